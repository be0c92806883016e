//! Traces of the exporter itself, from the real binary: the spans of a scrape
//! reach an OTLP receiver (HTTP/protobuf and gRPC, decoded with the
//! `opentelemetry-proto` types) with their parent links and attributes and
//! without the token; Graph API requests carry `traceparent`; exemplars link
//! the request histogram to the traces; a dead collector costs scrapes
//! nothing; SIGTERM flushes the spans still queued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::stack::{prometheus_api, start_prometheus};
use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimEvent, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

/// One export: its raw bytes and what they decode to.
type Export = (Vec<u8>, ExportTraceServiceRequest);

/// What an OTLP receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Export>>>);

impl Received {
    fn push(&self, raw: Vec<u8>, req: ExportTraceServiceRequest) {
        self.0.lock().unwrap().push((raw, req));
    }

    fn raw(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every span received, flattened, with its resource's attributes.
    fn spans(&self) -> Vec<Span> {
        let mut out = Vec::new();
        for (_, req) in self.0.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let resource = attrs(
                    rs.resource
                        .as_ref()
                        .map(|r| r.attributes.as_slice())
                        .unwrap_or_default(),
                );
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push(Span {
                            name: s.name.clone(),
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent: hex(&s.parent_span_id),
                            kind: s.kind,
                            attrs: attrs(&s.attributes),
                            error: s.status.as_ref().is_some_and(|st| st.code == 2),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    kind: i32,
    attrs: BTreeMap<String, String>,
    error: bool,
    resource: BTreeMap<String, String>,
}

impl Span {
    fn attr(&self, k: &str) -> &str {
        self.attrs
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("span {} has no attribute {k}: {:?}", self.name, self.attrs))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on loopback; returns its base URL.
async fn http_receiver(got: Received) -> String {
    async fn export(
        axum::extract::State(got): axum::extract::State<Received>,
        body: Bytes,
    ) -> impl axum::response::IntoResponse {
        match ExportTraceServiceRequest::decode(body.as_ref()) {
            Ok(req) => {
                got.push(body.to_vec(), req);
                (
                    axum::http::StatusCode::OK,
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
            Err(_) => (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "text/plain")],
                b"not an ExportTraceServiceRequest".to_vec(),
            ),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export))
        .with_state(got);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct GrpcSink(Received);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        self.0.push(req.encode_to_vec(), req);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on loopback; returns its URL.
async fn grpc_receiver(got: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcSink(got)))
            .serve_with_incoming(incoming),
    );
    url
}

/// The simulator with a message on PHONE, and PHONE2 failing with an error
/// that echoes the token; a config reading the token from a file.
async fn setup(name: &str) -> (Simulator, PathBuf) {
    let (sim, url) = simulator().await;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.set_fault(
        PHONE2,
        Some(Fault::GraphError {
            status: 400,
            code: 100,
            message: format!("Invalid parameter near access_token={TOKEN}"),
            is_transient: false,
        }),
    );
    let cfg = config_file_with_token_file(&url, &temp_dir(name));
    (sim, cfg)
}

/// Starts the binary with `env` and waits for its landing page (no scrape).
/// Its log goes to `log.txt` beside the config (a pipe nobody reads could
/// fill up and stall it).
async fn start(cfg: &Path, args: &[String], env: &[(&str, &str)]) -> (Running, String) {
    let port = free_port();
    let log = std::fs::File::create(log_path(cfg)).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        &format!("--config.file={}", cfg.display()),
        &format!("--web.listen-address=127.0.0.1:{port}"),
    ])
    .args(args)
    .env_remove("WHATSAPP_ACCESS_TOKEN")
    .stdout(Stdio::null())
    .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let running = Running(cmd.spawn().expect("binary starts"));
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "the exporter to listen", || {
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(&url).send().await.ok().map(|_| ()) }
    })
    .await;
    (running, url)
}

fn log_path(cfg: &Path) -> PathBuf {
    cfg.with_file_name("log.txt")
}

/// Sends SIGTERM and waits (at most 20 s) for the process to exit.
async fn terminate(running: Running) -> std::process::ExitStatus {
    signal_and_wait(running, "-TERM").await
}

/// Sends `signal` (`-TERM`, `-INT`) and waits (at most 20 s) for the process to exit.
async fn signal_and_wait(mut running: Running, signal: &str) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args([signal, &running.0.id().to_string()])
        .status();
    eventually(Duration::from_secs(20), "the exporter to exit", || {
        let status = running.0.try_wait().ok().flatten();
        async move { status }
    })
    .await
}

/// One scrape in OpenMetrics, with an optional incoming `traceparent`.
async fn scrape_om(url: &str, traceparent: Option<&str>) -> String {
    let mut req = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .timeout(Duration::from_secs(10));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.expect("scrape answers");
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Exemplar trace ids on the request-duration buckets of an OpenMetrics text.
fn exemplar_trace_ids(om: &str) -> Vec<String> {
    om.lines()
        .filter(|l| l.starts_with("whatsapp_graph_api_request_duration_seconds_bucket{"))
        .filter_map(|l| l.split_once(" # {trace_id=\"").map(|(_, r)| r))
        .filter_map(|r| r.split_once('"').map(|(id, _)| id.to_string()))
        .collect()
}

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

async fn spans_of_one_scrape(protocol: &str) {
    let got = Received::default();
    let endpoint = match protocol {
        "grpc" => grpc_receiver(got.clone()).await,
        _ => http_receiver(got.clone()).await,
    };
    let (sim, cfg) = setup(&format!("traces-{}", protocol.replace('/', "-"))).await;
    // HTTP through the flag, gRPC through the variable.
    let (flag, var) = match protocol {
        "grpc" => (vec![], endpoint.as_str()),
        _ => (vec![format!("--tracing.otlp-endpoint={endpoint}")], ""),
    };
    let (running, url) = start(
        &cfg,
        &flag,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", var),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "wa-test"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
        ],
    )
    .await;

    // A scrape inside a trace of Prometheus' (W3C traceparent in).
    let om = scrape_om(&url, Some(&format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"))).await;
    let spans = eventually(
        Duration::from_secs(30),
        "the spans of the scrape",
        || async {
            let spans = got.spans();
            let requests = spans
                .iter()
                .filter(|s| s.name == "graph_api_request" && s.trace_id == PARENT_TRACE)
                .count();
            // Three collections' requests and three health checks'.
            (requests >= 6).then_some(spans)
        },
    )
    .await;
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == PARENT_TRACE)
        .collect();
    let scrape: Vec<&&Span> = ours.iter().filter(|s| s.name == "scrape").collect();
    assert_eq!(scrape.len(), 1, "{ours:#?}");
    let scrape = scrape[0];
    assert_eq!(
        scrape.parent, PARENT_SPAN,
        "the scrape continues the caller's trace"
    );
    assert_eq!(scrape.kind, 2, "server span");
    assert_eq!(scrape.attr("format"), "openmetrics");
    assert_eq!(scrape.attr("targets"), "3");
    assert_eq!(scrape.attr("http.response.status_code"), "200");
    assert_eq!(scrape.resource["service.name"], "wa-test");
    assert_eq!(scrape.resource["deployment.environment.name"], "ci");

    let collections: BTreeMap<&str, &&Span> = ours
        .iter()
        .filter(|s| s.name == "collection")
        .map(|s| (s.attr("target"), s))
        .collect();
    assert_eq!(
        collections.keys().copied().collect::<Vec<_>>(),
        [PHONE, PHONE2, WABA],
        "one collection span per target"
    );
    for c in collections.values() {
        assert_eq!(c.parent, scrape.span_id, "collection under the scrape");
    }
    let phone = collections[PHONE];
    assert_eq!(phone.attr("collector"), "message_history");
    assert_eq!(phone.attr("outcome"), "ok");
    assert_eq!(phone.attr("pages"), "1");
    assert_eq!(phone.attr("events_new"), "1");
    assert_eq!(phone.attr("events_seen"), "0");
    assert_eq!(phone.attr("baseline"), "true");
    assert_eq!(phone.attr("sweep"), "baseline");
    assert_eq!(collections[WABA].attr("sweep"), "none");
    let failing = collections[PHONE2];
    assert_eq!(failing.attr("outcome"), "failed");
    assert_eq!(failing.attr("error_code"), "100");
    assert!(failing.error, "a failed collection has an error status");

    let requests: Vec<&&Span> = ours
        .iter()
        .filter(|s| s.name == "graph_api_request")
        .collect();
    // The account health checks' spans: one per check, under the scrape,
    // each over its request.
    let checks: BTreeMap<(&str, &str), &&Span> = ours
        .iter()
        .filter(|s| s.name == "health_check")
        .map(|s| ((s.attr("collector"), s.attr("target")), s))
        .collect();
    assert_eq!(
        checks.keys().copied().collect::<Vec<_>>(),
        [("health", PHONE), ("health", PHONE2), ("templates", WABA)],
        "one health check span per check"
    );
    for (&(collector, _), c) in &checks {
        assert_eq!(c.parent, scrape.span_id, "health check under the scrape");
        let endpoint = if collector == "health" {
            "health_status"
        } else {
            "message_templates"
        };
        assert!(
            ours.iter()
                .any(|r| r.parent == c.span_id && r.attr("endpoint") == endpoint),
            "{collector}: no {endpoint} request under its check"
        );
    }
    for r in requests
        .iter()
        .filter(|r| !checks.values().any(|c| c.span_id == r.parent))
    {
        let parent = collections
            .values()
            .find(|c| c.span_id == r.parent)
            .unwrap_or_else(|| panic!("request span not under a collection: {r:#?}"));
        assert_eq!(r.kind, 3, "client span");
        assert_eq!(r.attr("endpoint"), parent.attr("collector"));
        assert_eq!(r.attr("attempt"), "1");
        assert_eq!(r.attr("http.request.method"), "GET");
        assert!(r.attr("duration_ms").parse::<u64>().is_ok());
        let url_full = r.attr("url.full");
        assert!(
            url_full.ends_with(&format!(
                "/{}/{}",
                parent.attr("target"),
                parent.attr("collector")
            )) && !url_full.contains('?'),
            "{url_full}"
        );
        if parent.attr("target") == PHONE2 {
            assert_eq!(r.attr("http.response.status_code"), "400");
            assert_eq!(r.attr("graph.error_code"), "100");
            assert_eq!(r.attr("error.type"), "100");
            assert!(r.error);
        } else {
            assert_eq!(r.attr("http.response.status_code"), "200");
            assert!(r.attr("http.response.body.size").parse::<u64>().unwrap() > 10);
            assert!(!r.attrs.contains_key("graph.error_code"));
        }
    }

    // Each Graph API call carried the traceparent of its own request span.
    let sent = sim.traceparents();
    assert_eq!(sent.len(), requests.len(), "{sent:?}");
    for tp in &sent {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[1], PARENT_TRACE, "{tp}");
        assert!(requests.iter().any(|r| r.span_id == parts[2]), "{tp}");
        assert_eq!(parts[3], "01");
    }

    // The request buckets link to this trace.
    let ids = exemplar_trace_ids(&om);
    assert!(!ids.is_empty(), "no exemplars in:\n{om}");
    assert!(ids.iter().all(|id| id == PARENT_TRACE), "{ids:?}");

    // A second scrape, a trace of its own: the event is seen, not new.
    scrape_om(&url, None).await;
    let second = eventually(
        Duration::from_secs(30),
        "the second scrape's collection of PHONE",
        || async {
            got.spans().into_iter().find(|s| {
                s.name == "collection"
                    && s.trace_id != PARENT_TRACE
                    && s.attrs.get("target").map(String::as_str) == Some(PHONE)
            })
        },
    )
    .await;
    assert_eq!(second.attr("events_new"), "0");
    assert_eq!(second.attr("events_seen"), "1");
    assert_eq!(second.attr("baseline"), "false");
    // One page: the head read the whole window.
    assert_eq!(second.attr("sweep"), "covered");

    assert!(terminate(running).await.success());
    let log = std::fs::read_to_string(log_path(&cfg)).unwrap();
    for raw in got.raw() {
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(TOKEN), "the token reached the trace payload");
    }
    assert!(!log.contains(TOKEN), "{log}");
    // Log lines carry the span context, trace id included.
    let line = log
        .lines()
        .find(|l| l.contains("collection failing"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("trace_id={PARENT_TRACE}"))
            && line.contains(&format!("target={PHONE2}"))
            && line.contains("span_path=scrape>collection"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_scrape_reach_an_otlp_http_receiver() {
    spans_of_one_scrape("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_scrape_reach_an_otlp_grpc_receiver() {
    spans_of_one_scrape("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_exemplars_or_traceparent_when_tracing_is_off_or_unsampled() {
    // Off: nothing asks for traces.
    let (sim, cfg) = setup("traces-off").await;
    let (running, url) = start(&cfg, &[], &[]).await;
    let om = scrape_om(&url, None).await;
    assert!(om.contains("whatsapp_graph_api_request_duration_seconds_bucket{"));
    assert!(!om.contains(" # {"), "exemplar with tracing off:\n{om}");
    assert!(sim.traceparents().is_empty());
    drop(running);

    // On, but the sampler drops every trace: the context still travels (not
    // sampled), nothing is exported, no exemplar points at a missing trace.
    let got = Received::default();
    let endpoint = http_receiver(got.clone()).await;
    let (sim, cfg) = setup("traces-unsampled").await;
    let (running, url) = start(
        &cfg,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let om = scrape_om(&url, None).await;
    assert!(
        !om.contains(" # {"),
        "exemplar of an unsampled trace:\n{om}"
    );
    let sent = sim.traceparents();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|tp| tp.ends_with("-00")), "{sent:?}");
    // Stopping flushes whatever there is: nothing.
    assert!(terminate(running).await.success());
    assert!(got.spans().is_empty());
}

/// A listener that accepts connections and never answers.
fn blackhole() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_scrapes_nothing() {
    let (_hole, hole_url) = blackhole();
    let closed = format!("http://127.0.0.1:{}", free_port());
    for (what, endpoint, protocol) in [
        ("closed port, http", closed.as_str(), "http/protobuf"),
        ("closed port, grpc", closed.as_str(), "grpc"),
        ("no answer, http", hole_url.as_str(), "http/protobuf"),
        ("no answer, grpc", hole_url.as_str(), "grpc"),
    ] {
        let (_sim, cfg) = setup("traces-dead").await;
        let (running, url) = start(
            &cfg,
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                // Export often, wait long for each export, keep a tiny queue.
                ("OTEL_BSP_SCHEDULE_DELAY", "20"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ],
        )
        .await;
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let start = Instant::now();
            // scrape_om fails the test if a scrape does not answer within 10 s,
            // far below the 60 s an export may wait.
            let om = scrape_om(&url, None).await;
            slowest = slowest.max(start.elapsed());
            let healthy = format!("whatsapp_up{{collector=\"activities\",target=\"{WABA}\"}} 1\n");
            assert!(om.contains(&healthy), "{what}:\n{om}");
        }
        eprintln!("{what}: slowest of 20 scrapes {slowest:?}");
        // SIGTERM: the exporter gives up on the last spans and exits in time.
        let begun = Instant::now();
        let status = terminate(running).await;
        assert!(status.success(), "{what}: {status:?}");
        eprintln!("{what}: exited {:?} after SIGTERM", begun.elapsed());
        let log = std::fs::read_to_string(log_path(&cfg)).unwrap();
        eprintln!("{what}: {} log lines", log.lines().count());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_ctrl_c_flush_queued_spans() {
    for signal in ["-TERM", "-INT"] {
        let got = Received::default();
        let endpoint = http_receiver(got.clone()).await;
        let (_sim, cfg) = setup("traces-flush").await;
        let (running, url) = start(
            &cfg,
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                // No timed export for ten minutes: only the flush can send them.
                ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ],
        )
        .await;
        scrape_om(&url, None).await;
        assert!(got.spans().is_empty(), "exported before the flush");
        let status = signal_and_wait(running, signal).await;
        assert!(status.success(), "{signal}: {status:?}");
        let names: Vec<String> = got.spans().into_iter().map(|s| s.name).collect();
        assert!(names.iter().any(|n| n == "scrape"), "{signal}: {names:?}");
        assert_eq!(
            names.iter().filter(|n| *n == "collection").count(),
            3,
            "{signal}: {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_exemplars_and_they_name_exported_traces() {
    let Some(prometheus) = external_tool("prometheus", "prometheus") else {
        return;
    };
    let got = Received::default();
    let endpoint = http_receiver(got.clone()).await;
    let (_sim, cfg) = setup("traces-prometheus").await;
    let (_running, url) = start(
        &cfg,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let dir = cfg.parent().unwrap().to_path_buf();
    let (_prom, prom_url) = start_prometheus(
        &prometheus,
        &dir,
        &[url.trim_start_matches("http://")],
        "",
        &["--enable-feature=exemplar-storage"],
    );
    let client = reqwest::Client::new();
    let exemplars: Vec<String> = eventually(
        Duration::from_secs(60),
        "exemplars in Prometheus",
        || async {
            let (start, end) = ((now() - 600).to_string(), (now() + 60).to_string());
            let params = [
                (
                    "query",
                    "whatsapp_graph_api_request_duration_seconds_bucket",
                ),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ];
            let data = prometheus_api(&client, &prom_url, "query_exemplars", &params)
                .await
                .ok()?;
            let ids: Vec<String> = data
                .as_array()?
                .iter()
                .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(String::from))
                .collect();
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    // Each one leads to a trace the receiver got.
    let traces = eventually(
        Duration::from_secs(30),
        "the exemplars' traces at the receiver",
        || async {
            let spans = got.spans();
            exemplars
                .iter()
                .all(|id| {
                    spans
                        .iter()
                        .any(|s| &s.trace_id == id && s.name == "graph_api_request")
                })
                .then_some(spans.len())
        },
    )
    .await;
    assert!(traces > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
