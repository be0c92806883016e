//! The collection group: how each target's last collection went (`up`,
//! duration, pages, truncation, what it remembers) and the state file's writes.

use std::fmt;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::{Exposition, Scope, Scoped, Unscoped};
use crate::metrics::labels::{InvalidRecordLabels, OfTarget, ResultLabels, TargetLabels};
use crate::metrics::shared::{FloatGauge, REUSE};
use crate::metrics::tracked::Tracked;

/// `whatsapp_up` and the other per-target collection series.
#[derive(Clone, Debug)]
pub struct CollectionMetrics {
    /// `whatsapp_up`.
    pub up: Tracked<TargetLabels, Gauge>,
    /// `whatsapp_scrape_duration_seconds`.
    pub duration: Tracked<TargetLabels, FloatGauge>,
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
    /// `whatsapp_sweep_duration_seconds`.
    pub sweep_duration: Tracked<TargetLabels, FloatGauge>,
    state_writes: Family<ResultLabels, Counter>,
}

/// `whatsapp_up`, shown as 0 for the targets a scope says are down.
#[derive(Debug)]
struct Up(Tracked<TargetLabels, Gauge>);

impl Scoped for Up {
    fn encode_in(&self, mut encoder: MetricEncoder, scope: &Scope) -> fmt::Result {
        if scope.is_whole() {
            return self.0.encode(encoder);
        }
        let mut keys = self.0.keys();
        keys.sort();
        for l in keys
            .iter()
            .filter(|l| scope.only.as_ref().is_none_or(|t| l.of_target(t)))
        {
            let Some(g) = self.0.get(l) else { continue };
            let v = if scope.down.contains(l) { 0 } else { g.get() };
            encoder.encode_family(l)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    fn is_empty_in(&self, scope: &Scope) -> bool {
        self.0.is_empty_in(scope)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

impl CollectionMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = CollectionMetrics {
            up: Tracked::default(),
            duration: Tracked::default(),
            last_success: Tracked::default(),
            last_event: Tracked::default(),
            truncated: Tracked::default(),
            pages: Tracked::default(),
            seen_events: Tracked::default(),
            invalid_records: Tracked::default(),
            sweep_duration: Tracked::default(),
            state_writes: Family::default(),
        };
        exp.register(
            "whatsapp_up",
            format!("1 if the last collection of the target succeeded, else 0. {REUSE}"),
            Up(m.up.clone()),
        );
        exp.register(
            "whatsapp_scrape_duration_seconds",
            format!("Wall time of the last collection of the target. {REUSE}"),
            m.duration.clone(),
        );
        exp.register(
            "whatsapp_last_success_timestamp_seconds",
            "Unix time of the last successful collection of the target",
            m.last_success.clone(),
        );
        exp.register(
            "whatsapp_last_event_timestamp_seconds",
            "Unix time of the newest event seen for the target, baseline included",
            m.last_event.clone(),
        );
        exp.register(
            "whatsapp_collection_truncated",
            "Walks that stopped at collect.max_pages before reaching seen data or the lookback edge (a baseline, a head, a whole message_history sweep, an activities collection): events may have been missed",
            m.truncated.clone(),
        );
        exp.register(
            "whatsapp_collection_pages",
            "Pages fetched by collections of the target",
            m.pages.clone(),
        );
        exp.register(
            "whatsapp_seen_events",
            "Events remembered for deduplication (pruned past collect.lookback)",
            m.seen_events.clone(),
        );
        exp.register(
            "whatsapp_invalid_records",
            "Records skipped because they cannot be counted (for example no timestamp)",
            m.invalid_records.clone(),
        );
        exp.register(
            "whatsapp_sweep_duration_seconds",
            "How long the last complete sweep of the target's lookback window took (message_history): about the longest a new event on an old message waits to be counted",
            m.sweep_duration.clone(),
        );
        exp.register(
            "whatsapp_state_file_writes",
            "Writes of a target's state to the state store (state_file), one per collection that changed it, by result",
            Unscoped(m.state_writes.clone()),
        );
        m
    }

    /// Creates a target's series, so they are never absent once it is collected.
    pub fn init_target(&self, l: &TargetLabels) {
        drop(self.up.get_or_create(l));
        drop(self.truncated.get_or_create(l));
        drop(self.pages.get_or_create(l));
        drop(self.seen_events.get_or_create(l));
    }

    /// Counts `n` records of target `l` skipped for `reason`.
    pub fn invalid_records(&self, l: &TargetLabels, reason: &'static str, n: u64) {
        self.invalid_records
            .get_or_create(&InvalidRecordLabels {
                collector: l.collector,
                target: l.target.clone(),
                reason,
            })
            .inc_by(n);
    }

    /// Creates both write series at 0: the state store is in use.
    pub fn store_opened(&self) {
        for result in ["success", "failure"] {
            self.state_writes
                .get_or_create(&ResultLabels { result })
                .inc_by(0);
        }
    }

    /// Counts a write to the state store.
    pub fn state_written(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.state_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Removes every series of target `l`.
    pub fn forget_target(&self, l: &TargetLabels) {
        let other = |k: &TargetLabels| k != l;
        self.up.retain(other);
        self.duration.retain(other);
        self.last_success.retain(other);
        self.last_event.retain(other);
        self.truncated.retain(other);
        self.pages.retain(other);
        self.seen_events.retain(other);
        self.sweep_duration.retain(other);
        self.invalid_records.retain(|k| !k.of_target(l));
    }
}
