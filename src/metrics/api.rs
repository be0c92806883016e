//! The Graph API group: what the client did (requests, errors, retries,
//! durations) and what Meta said of the budget (usage, regain time), and
//! which targets are held back. The Graph client gets this group only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::labels::LabelCap;
use std::borrow::Cow;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::{Exposition, Unscoped};
use crate::metrics::labels::{
    ApiErrorLabels, EndpointLabels, RequestLabels, TargetOnlyLabels, TraceLabels, UsageLabels,
};
use crate::metrics::shared::FloatGauge;
use crate::metrics::tracked::Tracked;

/// A histogram whose buckets carry the trace id of their last observation.
pub type RequestHistogram = HistogramWithExemplars<TraceLabels>;

type HistogramFamily = Family<EndpointLabels, RequestHistogram, fn() -> RequestHistogram>;

fn request_histogram() -> RequestHistogram {
    HistogramWithExemplars::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0].into_iter())
}

/// `whatsapp_graph_api_*`.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    errors: Family<ApiErrorLabels, Counter>,
    duration: HistogramFamily,
    retries: Family<EndpointLabels, Counter>,
    usage_percent: Tracked<UsageLabels, FloatGauge>,
    regain_seconds: Tracked<TargetOnlyLabels, FloatGauge>,
    throttled: Tracked<TargetOnlyLabels, Gauge>,
    /// Values of `usage_type` per target and of `error_code` per endpoint.
    caps: Arc<Mutex<HashMap<String, LabelCap>>>,
    /// `collect.max_label_values`.
    max_label_values: Arc<AtomicUsize>,
}

impl ApiMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = ApiMetrics {
            requests: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(request_histogram),
            retries: Family::default(),
            usage_percent: Tracked::default(),
            regain_seconds: Tracked::default(),
            throttled: Tracked::default(),
            caps: Arc::default(),
            max_label_values: Arc::new(AtomicUsize::new(50)),
        };
        exp.register(
            "whatsapp_graph_api_requests",
            "Graph API requests that got an HTTP response, by status code",
            Unscoped(m.requests.clone()),
        );
        exp.register(
            "whatsapp_graph_api_errors",
            "Failed Graph API requests by Graph error code, http_<status>, timeout, network, decode, too_large or cursor_loop",
            Unscoped(m.errors.clone()),
        );
        exp.register(
            "whatsapp_graph_api_request_duration_seconds",
            "Duration of Graph API requests, body included; with tracing on, buckets carry the trace_id of their last request as an exemplar",
            Unscoped(m.duration.clone()),
        );
        exp.register(
            "whatsapp_graph_api_retries",
            "Retries of transient Graph API failures (5xx, is_transient, network, timeout)",
            Unscoped(m.retries.clone()),
        );
        exp.register(
            "whatsapp_graph_api_usage_percent",
            "API usage in percent as Meta last reported it in X-App-Usage (usage_type app) or X-Business-Use-Case-Usage; absent until reported",
            m.usage_percent.clone(),
        );
        exp.register(
            "whatsapp_graph_api_regain_access_seconds",
            "Meta's estimated time to regain access, from X-Business-Use-Case-Usage; absent until reported",
            m.regain_seconds.clone(),
        );
        exp.register(
            "whatsapp_graph_api_throttled",
            "1 while the target makes no API calls to stay within the budget (usage threshold, rate-limit error or collect.max_requests_per_hour); scrapes serve the last values",
            m.throttled.clone(),
        );
        m
    }

    /// A request to `endpoint` got an HTTP response with `status`.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                status_code: status,
            })
            .inc();
    }

    /// Sets `collect.max_label_values` (at start-up and on reload).
    pub fn set_max_label_values(&self, n: usize) {
        self.max_label_values.store(n, Ordering::Relaxed);
    }

    /// `v` as a value of the label `of`, or `other` past the cap.
    fn capped(&self, of: String, v: &str) -> String {
        let max = self.max_label_values.load(Ordering::Relaxed);
        let mut caps = self.caps.lock().unwrap_or_else(|p| p.into_inner());
        caps.entry(of).or_default().admit(v, max)
    }

    /// A request to `endpoint` (or a walk over it) failed with `error_code`.
    pub fn error(&self, endpoint: &'static str, error_code: Cow<'static, str>) {
        let error_code = match error_code {
            // The exporter's own codes are a fixed set.
            Cow::Borrowed(c) => Cow::Borrowed(c),
            Cow::Owned(c) => Cow::Owned(self.capped(format!("error_code/{endpoint}"), &c)),
        };
        self.errors
            .get_or_create(&ApiErrorLabels {
                endpoint,
                error_code,
            })
            .inc();
    }

    /// A request to `endpoint` took `seconds`; `trace_id` of its sampled trace, if any.
    pub fn observe_duration(&self, endpoint: &'static str, seconds: f64, trace_id: Option<String>) {
        let exemplar = trace_id.map(|trace_id| TraceLabels { trace_id });
        let at = exemplar.as_ref().map(|_| SystemTime::now());
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds, exemplar, at);
    }

    /// A transient failure of a request to `endpoint` is tried again.
    pub fn retry(&self, endpoint: &'static str) {
        self.retries
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    /// Meta reported `percent` of `usage_type`'s `metric` for a call of `target`.
    pub fn usage(&self, target: &str, usage_type: &str, metric: &'static str, percent: f64) {
        self.usage_percent
            .get_or_create(&UsageLabels {
                target: target.to_string(),
                usage_type: self.capped(format!("usage_type/{target}"), usage_type),
                metric,
            })
            .set(percent);
    }

    /// Meta's estimated time until `target` regains access.
    pub fn regain(&self, target: &str, seconds: f64) {
        self.regain_seconds
            .get_or_create(&TargetOnlyLabels {
                target: target.to_string(),
            })
            .set(seconds);
    }

    /// Creates the series of a target new to this process.
    pub fn init_target(&self, target: &str) {
        drop(self.throttled.get_or_create(&TargetOnlyLabels {
            target: target.to_string(),
        }));
    }

    /// Whether `target` is held back by the budget now.
    pub fn set_throttled(&self, target: &str, held: bool) {
        self.throttled
            .get_or_create(&TargetOnlyLabels {
                target: target.to_string(),
            })
            .set(i64::from(held));
    }

    /// Removes the series of the id `target` (no target uses it any more).
    pub fn forget_target(&self, target: &str) {
        self.caps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&format!("usage_type/{target}"));
        self.usage_percent.retain(|l| l.target != target);
        self.regain_seconds.retain(|l| l.target != target);
        self.throttled.retain(|l| l.target != target);
    }
}
