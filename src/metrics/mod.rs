//! Metric families, their registration, and the per-label-set helpers the
//! collectors use. Encoding lives in [`encode`].
//!
//! Names follow the Prometheus naming page: counters are registered without
//! `_total` (prometheus-client appends it), times are `_timestamp_seconds`.

pub mod encode;
pub mod tracked;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub use tracked::Tracked;

/// A float gauge.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// `{waba_id, category, event_type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityLabels {
    /// WABA id.
    pub waba_id: String,
    /// Activity category.
    pub category: String,
    /// Activity event type.
    pub event_type: String,
}

/// `{phone_number_id, delivery_status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Delivery status as the API gives it.
    pub delivery_status: String,
}

/// `{phone_number_id, application_id, webhook_update_state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// App whose webhook received (or not) the update.
    pub application_id: String,
    /// Webhook delivery state as the API gives it.
    pub webhook_update_state: String,
}

/// `{phone_number_id, error}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryErrorLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Normalised, capped error description, or `other`.
    pub error: String,
}

/// `{collector, target}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// `activities` or `message_history`.
    pub collector: String,
    /// WABA id or phone number id.
    pub target: String,
}

/// `{collector, target, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvalidRecordLabels {
    /// `activities` or `message_history`.
    pub collector: String,
    /// WABA id or phone number id.
    pub target: String,
    /// Why the record was skipped.
    pub reason: String,
}

/// `{endpoint, status_code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `activities` or `message_history`.
    pub endpoint: String,
    /// HTTP status code.
    pub status_code: String,
}

/// `{endpoint, error_code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    /// `activities` or `message_history`.
    pub endpoint: String,
    /// Graph `error.code`, `http_<status>`, `timeout`, `network`, `decode`, ...
    pub error_code: String,
}

/// `{endpoint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `activities` or `message_history`.
    pub endpoint: String,
}

/// `{target}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetOnlyLabels {
    /// WABA id or phone number id.
    pub target: String,
}

/// `{target, usage_type, metric}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    /// WABA id or phone number id whose call reported it.
    pub target: String,
    /// `app` (X-App-Usage) or the business-use-case type.
    pub usage_type: String,
    /// `call_count`, `total_cputime` or `total_time`.
    pub metric: String,
}

/// `{phone_number_id, display_phone_number, verified_name, waba_id}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhoneInfoLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// As the API shows it.
    pub display_phone_number: String,
    /// The business name shown to users.
    pub verified_name: String,
    /// The account it belongs to.
    pub waba_id: String,
}

/// `{phone_number_id, rating}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QualityLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN` or another value the API gives.
    pub rating: String,
}

/// `{phone_number_id, tier}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Messaging limit tier as the API gives it.
    pub tier: String,
}

/// `{index, count}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// This process's shard, 0-based.
    pub index: String,
    /// Number of shards.
    pub count: String,
}

/// `{version, revision}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Crate version.
    pub version: String,
    /// Git revision or `unknown`.
    pub revision: String,
}

/// `{trace_id}`: the exemplar of a request histogram bucket, linking it to its trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    /// W3C trace id, 32 hex digits.
    pub trace_id: String,
}

/// A histogram whose buckets carry the trace id of their last observation.
pub type RequestHistogram = HistogramWithExemplars<TraceLabels>;

type HistogramFamily = Family<EndpointLabels, RequestHistogram, fn() -> RequestHistogram>;

fn request_histogram() -> RequestHistogram {
    HistogramWithExemplars::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0].into_iter())
}

const REUSE: &str =
    "A scrape within collect.min_interval of the last collection of a target reuses its result";

/// Every metric the exporter exposes.
#[derive(Clone)]
pub struct Metrics {
    /// `whatsapp_activity_events_total`.
    pub activity_events: Tracked<ActivityLabels, Counter>,
    /// `whatsapp_message_status_events_total`.
    pub status_events: Tracked<StatusLabels, Counter>,
    /// `whatsapp_webhook_updates_total`.
    pub webhook_updates: Tracked<WebhookLabels, Counter>,
    /// `whatsapp_webhook_update_failures_total`.
    pub webhook_failures: Tracked<WebhookLabels, Counter>,
    /// `whatsapp_message_delivery_errors_total`.
    pub delivery_errors: Tracked<DeliveryErrorLabels, Counter>,
    /// `whatsapp_up`.
    pub up: Tracked<TargetLabels, Gauge>,
    /// `whatsapp_scrape_duration_seconds`.
    pub scrape_duration: Tracked<TargetLabels, FloatGauge>,
    /// `whatsapp_last_success_timestamp_seconds`.
    pub last_success: Tracked<TargetLabels, FloatGauge>,
    /// `whatsapp_last_event_timestamp_seconds`.
    pub last_event: Tracked<TargetLabels, FloatGauge>,
    /// `whatsapp_collection_truncated_total`.
    pub truncated: Tracked<TargetLabels, Counter>,
    /// `whatsapp_collection_pages_total`.
    pub pages: Tracked<TargetLabels, Counter>,
    /// `whatsapp_seen_events`.
    pub seen_events: Tracked<TargetLabels, Gauge>,
    /// `whatsapp_invalid_records_total`.
    pub invalid_records: Tracked<InvalidRecordLabels, Counter>,
    /// `whatsapp_graph_api_requests_total`.
    pub api_requests: Family<RequestLabels, Counter>,
    /// `whatsapp_graph_api_errors_total`.
    pub api_errors: Family<ApiErrorLabels, Counter>,
    /// `whatsapp_graph_api_request_duration_seconds`.
    pub api_duration: HistogramFamily,
    /// `whatsapp_state_file_writes_total` / failures.
    pub state_writes: Family<ResultLabels, Counter>,
    /// `whatsapp_graph_api_retries_total`.
    pub api_retries: Family<EndpointLabels, Counter>,
    /// `whatsapp_graph_api_usage_percent`.
    pub usage_percent: Tracked<UsageLabels, FloatGauge>,
    /// `whatsapp_graph_api_regain_access_seconds`.
    pub regain_seconds: Tracked<TargetOnlyLabels, FloatGauge>,
    /// `whatsapp_graph_api_throttled`.
    pub throttled: Tracked<TargetOnlyLabels, Gauge>,
    /// `whatsapp_phone_number_info`.
    pub phone_info: Tracked<PhoneInfoLabels, Gauge>,
    /// `whatsapp_phone_number_quality`.
    pub phone_quality: Tracked<QualityLabels, Gauge>,
    /// `whatsapp_phone_number_messaging_limit`.
    pub phone_limit: Tracked<LimitLabels, Gauge>,
    /// `whatsapp_shard_info`.
    pub shard_info: Tracked<ShardLabels, Gauge>,
    /// `whatsapp_config_last_reload_successful`.
    pub reload_successful: Gauge,
    /// `whatsapp_config_last_reload_success_timestamp_seconds`.
    pub reload_timestamp: FloatGauge,
}

/// `{result}`: `success` or `failure`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: String,
}

impl Metrics {
    /// Creates every family and registers it; also sets `whatsapp_exporter_build_info`.
    pub fn register(registry: &mut Registry, version: &str, revision: &str) -> Self {
        let m = Metrics {
            activity_events: Tracked::default(),
            status_events: Tracked::default(),
            webhook_updates: Tracked::default(),
            webhook_failures: Tracked::default(),
            delivery_errors: Tracked::default(),
            up: Tracked::default(),
            scrape_duration: Tracked::default(),
            last_success: Tracked::default(),
            last_event: Tracked::default(),
            truncated: Tracked::default(),
            pages: Tracked::default(),
            seen_events: Tracked::default(),
            invalid_records: Tracked::default(),
            api_requests: Family::default(),
            api_errors: Family::default(),
            api_duration: Family::new_with_constructor(request_histogram),
            state_writes: Family::default(),
            api_retries: Family::default(),
            usage_percent: Tracked::default(),
            regain_seconds: Tracked::default(),
            throttled: Tracked::default(),
            phone_info: Tracked::default(),
            phone_quality: Tracked::default(),
            phone_limit: Tracked::default(),
            shard_info: Tracked::default(),
            reload_successful: Gauge::default(),
            reload_timestamp: FloatGauge::default(),
        };
        let r = registry;
        r.register(
            "whatsapp_activity_events",
            format!("Distinct WABA activity records seen, each counted once (by id, else by a hash of its fields). {REUSE}"),
            m.activity_events.clone(),
        );
        r.register(
            "whatsapp_message_status_events",
            format!("Distinct message delivery-status events seen, by delivery_status, each counted once. {REUSE}"),
            m.status_events.clone(),
        );
        r.register(
            "whatsapp_webhook_updates",
            format!("Distinct delivery-status events by the state of Meta's webhook delivery to the application. {REUSE}"),
            m.webhook_updates.clone(),
        );
        r.register(
            "whatsapp_webhook_update_failures",
            format!("Distinct delivery-status events whose webhook_update_state is a failure state (collect.webhook_failure_states). {REUSE}"),
            m.webhook_failures.clone(),
        );
        r.register(
            "whatsapp_message_delivery_errors",
            format!("Distinct delivery-status events carrying an error_description, by normalised description (capped per phone number, the rest as other). {REUSE}"),
            m.delivery_errors.clone(),
        );
        r.register(
            "whatsapp_up",
            format!("1 if the last collection of the target succeeded, else 0. {REUSE}"),
            m.up.clone(),
        );
        r.register(
            "whatsapp_scrape_duration_seconds",
            format!("Wall time of the last collection of the target. {REUSE}"),
            m.scrape_duration.clone(),
        );
        r.register(
            "whatsapp_last_success_timestamp_seconds",
            "Unix time of the last successful collection of the target",
            m.last_success.clone(),
        );
        r.register(
            "whatsapp_last_event_timestamp_seconds",
            "Unix time of the newest event seen for the target, baseline included",
            m.last_event.clone(),
        );
        r.register(
            "whatsapp_collection_truncated",
            "Collections that stopped at collect.max_pages before reaching seen data or the lookback edge: events may have been missed",
            m.truncated.clone(),
        );
        r.register(
            "whatsapp_collection_pages",
            "Pages fetched by collections of the target",
            m.pages.clone(),
        );
        r.register(
            "whatsapp_seen_events",
            "Events remembered for deduplication (pruned past collect.lookback)",
            m.seen_events.clone(),
        );
        r.register(
            "whatsapp_invalid_records",
            "Records skipped because they cannot be counted (for example no timestamp)",
            m.invalid_records.clone(),
        );
        r.register(
            "whatsapp_graph_api_requests",
            "Graph API requests that got an HTTP response, by status code",
            m.api_requests.clone(),
        );
        r.register(
            "whatsapp_graph_api_errors",
            "Failed Graph API requests by Graph error code, http_<status>, timeout, network, decode, too_large or cursor_loop",
            m.api_errors.clone(),
        );
        r.register(
            "whatsapp_graph_api_request_duration_seconds",
            "Duration of Graph API requests, body included; with tracing on, buckets carry the trace_id of their last request as an exemplar",
            m.api_duration.clone(),
        );
        r.register(
            "whatsapp_state_file_writes",
            "Writes of the state file by result",
            m.state_writes.clone(),
        );
        r.register(
            "whatsapp_graph_api_retries",
            "Retries of transient Graph API failures (5xx, is_transient, network, timeout)",
            m.api_retries.clone(),
        );
        r.register(
            "whatsapp_graph_api_usage_percent",
            "API usage in percent as Meta last reported it in X-App-Usage (usage_type app) or X-Business-Use-Case-Usage; absent until reported",
            m.usage_percent.clone(),
        );
        r.register(
            "whatsapp_graph_api_regain_access_seconds",
            "Meta's estimated time to regain access, from X-Business-Use-Case-Usage; absent until reported",
            m.regain_seconds.clone(),
        );
        r.register(
            "whatsapp_graph_api_throttled",
            "1 while the target makes no API calls to stay within the budget (usage threshold, rate-limit error or collect.max_requests_per_hour); scrapes serve the last values",
            m.throttled.clone(),
        );
        r.register(
            "whatsapp_phone_number_info",
            "1 for each phone number listed by GET /{WABA-ID}/phone_numbers (every discovery.interval); labels give its display number and verified name",
            m.phone_info.clone(),
        );
        r.register(
            "whatsapp_phone_number_quality",
            "1 for the phone number's current quality_rating, 0 for the other ratings (GREEN, YELLOW, RED, UNKNOWN)",
            m.phone_quality.clone(),
        );
        r.register(
            "whatsapp_phone_number_messaging_limit",
            "1 for the phone number's current messaging limit tier",
            m.phone_limit.clone(),
        );
        r.register(
            "whatsapp_shard_info",
            "1 when this process collects one shard of the targets (--shard or shard: in the config): the targets whose stable hash modulo count is index",
            m.shard_info.clone(),
        );
        r.register(
            "whatsapp_config_last_reload_successful",
            "1 if the last load of the configuration file (start-up, SIGHUP or POST /-/reload) succeeded, else 0",
            m.reload_successful.clone(),
        );
        r.register(
            "whatsapp_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the configuration file",
            m.reload_timestamp.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: version.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
        r.register(
            "whatsapp_exporter_build_info",
            "Always 1; labels give the exporter's version and git revision",
            build,
        );
        m
    }

    /// Creates the per-target series so they are never absent once configured.
    pub fn init_target(&self, collector: &str, target: &str) {
        let l = TargetLabels {
            collector: collector.to_string(),
            target: target.to_string(),
        };
        drop(self.up.get_or_create(&l));
        drop(self.truncated.get_or_create(&l));
        drop(self.pages.get_or_create(&l));
        drop(self.seen_events.get_or_create(&l));
        drop(self.throttled.get_or_create(&TargetOnlyLabels {
            target: target.to_string(),
        }));
    }

    /// Removes every series of the `collector` target `id`, dropped by a
    /// config reload. `id_in_use`: another target has the same id, so the
    /// series labelled by id alone stay.
    pub fn forget_target(&self, collector: &str, id: &str, id_in_use: bool) {
        let other = |l: &TargetLabels| !(l.collector == collector && l.target == id);
        self.up.retain(other);
        self.scrape_duration.retain(other);
        self.last_success.retain(other);
        self.last_event.retain(other);
        self.truncated.retain(other);
        self.pages.retain(other);
        self.seen_events.retain(other);
        self.invalid_records
            .retain(|l| !(l.collector == collector && l.target == id));
        match collector {
            "activities" => self.activity_events.retain(|l| l.waba_id != id),
            _ => {
                self.status_events.retain(|l| l.phone_number_id != id);
                self.webhook_updates.retain(|l| l.phone_number_id != id);
                self.webhook_failures.retain(|l| l.phone_number_id != id);
                self.delivery_errors.retain(|l| l.phone_number_id != id);
            }
        }
        if !id_in_use {
            self.usage_percent.retain(|l| l.target != id);
            self.regain_seconds.retain(|l| l.target != id);
            self.throttled.retain(|l| l.target != id);
        }
    }

    /// Sets `whatsapp_shard_info` to this process's shard (none: no series).
    pub fn set_shard(&self, shard: Option<(u32, u32)>) {
        let l = shard.map(|(i, n)| ShardLabels {
            index: i.to_string(),
            count: n.to_string(),
        });
        self.shard_info.retain(|k| Some(k) == l.as_ref());
        if let Some(l) = l {
            self.shard_info.get_or_create(&l).set(1);
        }
    }
}
