//! Collection: for every target, fetch the recent pages, count what is new
//! exactly once, and record how the collection went.
//!
//! Each target has its own state behind an async mutex. A scrape that finds
//! a collection of the target in flight waits for it and then reuses its
//! result (it falls within `collect.min_interval` of the attempt), so
//! concurrent scrapes share one collection. Targets are collected
//! concurrently, at most `collect.concurrency` at a time.

pub mod activities;
pub mod discovery;
pub mod message_history;
pub mod seen;
pub mod state_file;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use opentelemetry::trace::Status;
use tokio::sync::Mutex;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{CollectorKind, LoadedConfig, TargetSpec};
use crate::error::GraphError;
use crate::graph::GraphClient;
use crate::graph::paging::End;
use crate::metrics::{InvalidRecordLabels, Metrics, ResultLabels, TargetLabels, TargetOnlyLabels};
use seen::SeenEvents;
use state_file::{StateFile, TargetRecord};

/// Settings of `collect:` in the form the collectors use.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// `limit=`.
    pub page_size: u32,
    /// Pages per collection.
    pub max_pages: u32,
    /// Counting window.
    pub lookback: Duration,
    /// Reuse window.
    pub min_interval: Duration,
    /// Parallel collections.
    pub concurrency: usize,
    /// Failure values of `webhook_update_state`.
    pub webhook_failure_states: HashSet<String>,
    /// Distinct `error` labels per phone number.
    pub max_error_labels: usize,
}

impl From<&LoadedConfig> for CollectSettings {
    fn from(loaded: &LoadedConfig) -> Self {
        let c = &loaded.config.collect;
        CollectSettings {
            page_size: c.page_size,
            max_pages: c.max_pages,
            lookback: c.lookback,
            min_interval: c.min_interval,
            concurrency: c.concurrency,
            webhook_failure_states: c.webhook_failure_states.iter().cloned().collect(),
            max_error_labels: c.max_error_labels,
        }
    }
}

/// What one page scan found.
#[derive(Debug)]
pub struct Scan<'p, T> {
    /// Records or events not seen before (now remembered).
    pub new: Vec<&'p T>,
    /// Records or events within the window that were seen before.
    pub seen: usize,
    /// Reasons of records skipped as invalid.
    pub invalid: Vec<&'static str>,
    /// Newest event time on the page.
    pub newest: Option<i64>,
    /// The scan should not go further back.
    pub stop: bool,
}

impl<T> Default for Scan<'_, T> {
    fn default() -> Self {
        Scan {
            new: Vec::new(),
            seen: 0,
            invalid: Vec::new(),
            newest: None,
            stop: false,
        }
    }
}

/// Mutable state of one target.
#[derive(Debug, Default)]
pub struct TargetState {
    /// Events already counted (or marked by the baseline).
    pub seen: SeenEvents,
    /// The first successful collection has been made (or restored from the state file).
    pub baseline_done: bool,
    /// Start of the last collection attempt.
    pub last_attempt: Option<Instant>,
    /// Newest event time seen.
    pub last_event: Option<i64>,
    /// `error` label values in use for this phone number.
    pub error_labels: HashSet<String>,
    /// Applications seen for this phone number (their failure-state series exist).
    pub applications: HashSet<String>,
    /// `error_code` of the failure in progress, for one log line per failure state.
    pub failing: Option<String>,
    /// Changed since the state file was last written.
    pub dirty: bool,
    /// The last activities walk failed after remembering records, so the
    /// next one scans the whole window instead of stopping at seen records.
    pub partial: bool,
    /// What the collection in progress found so far.
    pub tally: Tally,
}

/// Events found by one collection: new ones and ones already seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Not seen before (counted, or remembered by a baseline).
    pub new: u64,
    /// Seen before (on an overlapping page).
    pub seen: u64,
}

impl TargetState {
    /// The state saved in the state file, pruned at the lookback `edge`.
    fn restored(rec: TargetRecord, edge: i64) -> TargetState {
        let mut seen = SeenEvents::from_entries(rec.seen);
        seen.prune(edge);
        TargetState {
            seen,
            last_event: rec.last_event_timestamp,
            partial: rec.partial,
            baseline_done: true,
            ..TargetState::default()
        }
    }

    /// Takes in the side results of a page scan.
    fn absorb<T>(&mut self, scan: &Scan<'_, T>, m: &Metrics, target: &Target) {
        if !scan.new.is_empty() {
            self.dirty = true;
        }
        self.tally.new += scan.new.len() as u64;
        self.tally.seen += scan.seen as u64;
        if scan.newest.is_some() {
            self.last_event = self.last_event.max(scan.newest);
        }
        for reason in &scan.invalid {
            m.invalid_records
                .get_or_create(&InvalidRecordLabels {
                    collector: target.labels.collector.clone(),
                    target: target.labels.target.clone(),
                    reason: (*reason).to_string(),
                })
                .inc();
        }
    }
}

/// One configured target and its state.
#[derive(Debug)]
pub struct Target {
    /// What to collect.
    pub spec: TargetSpec,
    /// `{collector, target}` labels.
    pub labels: TargetLabels,
    /// Seen-state and bookkeeping.
    pub state: Mutex<TargetState>,
    /// A scrape asked for a collection of this target that has not finished yet.
    pub pending: AtomicBool,
    /// A config reload replaced this target: it is never collected again.
    retired: AtomicBool,
}

impl Target {
    fn new(spec: TargetSpec, state: TargetState) -> Arc<Target> {
        Arc::new(Target {
            labels: TargetLabels {
                collector: spec.collector.as_str().to_string(),
                target: spec.id.clone(),
            },
            spec,
            state: Mutex::new(state),
            pending: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        })
    }

    /// Waits for a collection in flight, then takes the state and stops
    /// collecting this target.
    async fn retire(&self) -> TargetState {
        let mut st = self.state.lock().await;
        self.retired.store(true, Ordering::Release);
        std::mem::take(&mut *st)
    }
}

/// The state of a target new to this process: its series created, and its
/// record in the state file (`saved`), if any, restored and pruned at `edge`.
fn fresh_state(
    metrics: &Metrics,
    spec: &TargetSpec,
    saved: &mut StateFile,
    edge: i64,
) -> TargetState {
    let collector = spec.collector.as_str();
    metrics.init_target(collector, &spec.id);
    let state = saved
        .targets
        .remove(&state_file::target_key(collector, &spec.id))
        .map(|rec| TargetState::restored(rec, edge))
        .unwrap_or_default();
    if let Some(t) = state.last_event {
        metrics
            .last_event
            .get_or_create(&TargetLabels {
                collector: collector.to_string(),
                target: spec.id.clone(),
            })
            .set(t as f64);
    }
    state
}

/// Clears a target's `pending` flag when its collection step ends, however it ends.
struct PendingGuard<'a>(&'a AtomicBool);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// All targets, the client and the metrics they feed.
pub struct Collectors {
    targets: Vec<Arc<Target>>,
    client: GraphClient,
    metrics: Metrics,
    settings: CollectSettings,
    state_file: Option<PathBuf>,
}

/// Longest label value taken from the API, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// `s` cut to at most `max` characters, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// A label value as the API gives it (trimmed, capped at
/// [`MAX_LABEL_CHARS`]); missing or empty becomes `unknown`.
pub fn label_value(v: Option<&str>) -> String {
    match v.map(str::trim) {
        Some(s) if !s.is_empty() => truncate_chars(s, MAX_LABEL_CHARS).to_string(),
        _ => "unknown".to_string(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Collectors {
    /// Builds `targets` of a configuration, restoring seen-state from the state file if any.
    pub fn new(
        loaded: &LoadedConfig,
        targets: &[TargetSpec],
        client: GraphClient,
        metrics: Metrics,
    ) -> Self {
        let settings = CollectSettings::from(loaded);
        let state_file = loaded.config.state_file.clone();
        let mut restored = state_file
            .as_deref()
            .map(|p| match state_file::load(p) {
                Ok(f) => f,
                Err(e) => {
                    let aside = state_file::set_aside(p);
                    tracing::error!(
                        error = %e,
                        set_aside = ?aside.ok(),
                        "state file unusable; starting with a baseline for every target"
                    );
                    StateFile::default()
                }
            })
            .unwrap_or_default();
        let edge = unix_now() - settings.lookback.as_secs() as i64;
        let targets = targets
            .iter()
            .map(|spec| {
                Target::new(
                    spec.clone(),
                    fresh_state(&metrics, spec, &mut restored, edge),
                )
            })
            .collect();
        Collectors {
            targets,
            client,
            metrics,
            settings,
            state_file,
        }
    }

    /// The collectors of a reloaded configuration with these `targets`: a
    /// target kept carries over its state (seen-state, baseline; its
    /// counters stay in the metrics), a removed one is retired and its series
    /// removed, a new one starts with a baseline. Waits for collections in flight.
    pub async fn reload(
        &self,
        loaded: &LoadedConfig,
        targets: &[TargetSpec],
        client: GraphClient,
    ) -> Collectors {
        self.rebuild(
            targets,
            client,
            CollectSettings::from(loaded),
            loaded.config.state_file.clone(),
        )
        .await
    }

    /// The same collectors with another target list (discovery found or lost
    /// phone numbers): as [`Collectors::reload`].
    pub async fn retarget(&self, targets: &[TargetSpec]) -> Collectors {
        self.rebuild(
            targets,
            self.client.clone(),
            self.settings.clone(),
            self.state_file.clone(),
        )
        .await
    }

    async fn rebuild(
        &self,
        specs: &[TargetSpec],
        client: GraphClient,
        settings: CollectSettings,
        state_file: Option<PathBuf>,
    ) -> Collectors {
        let mut old: HashMap<String, Arc<Target>> = self
            .targets
            .iter()
            .map(|t| {
                let key = state_file::target_key(&t.labels.collector, &t.labels.target);
                (key, t.clone())
            })
            .collect();
        let mut targets = Vec::with_capacity(specs.len());
        // A new target saved in the state file (a discovered number after a
        // restart, a target put back) resumes from its record.
        let mut saved: Option<StateFile> = None;
        let edge = unix_now() - settings.lookback.as_secs() as i64;
        for spec in specs {
            let collector = spec.collector.as_str();
            let key = state_file::target_key(collector, &spec.id);
            let state = match old.remove(&key) {
                Some(t) => t.retire().await,
                None => {
                    let file = saved.get_or_insert_with(|| {
                        state_file
                            .as_deref()
                            .and_then(|p| state_file::load(p).ok())
                            .unwrap_or_default()
                    });
                    fresh_state(&self.metrics, spec, file, edge)
                }
            };
            targets.push(Target::new(spec.clone(), state));
        }
        let ids: HashSet<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        for t in old.into_values() {
            t.retire().await;
            self.metrics.forget_target(
                &t.labels.collector,
                &t.labels.target,
                ids.contains(t.labels.target.as_str()),
            );
        }
        Collectors {
            targets,
            client,
            metrics: self.metrics.clone(),
            settings,
            state_file,
        }
    }

    /// The Graph API client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The configured targets.
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// Collects every target that is due, then writes the state file if
    /// anything changed. No retry starts after `deadline`.
    pub async fn collect_all(&self, deadline: Option<Instant>) {
        self.collect(self.targets.clone(), deadline).await;
    }

    /// The target `id` of `collector`, if this process collects it.
    pub fn find(&self, collector: &str, id: &str) -> Option<Arc<Target>> {
        self.targets
            .iter()
            .find(|t| t.labels.collector == collector && t.labels.target == id)
            .cloned()
    }

    /// Collects `targets` that are due, then writes the state file if
    /// anything changed. No retry starts after `deadline`.
    pub async fn collect(&self, targets: Vec<Arc<Target>>, deadline: Option<Instant>) {
        for t in &targets {
            t.pending.store(true, Ordering::Release);
        }
        let changed = futures_util::stream::iter(targets)
            .map(|t| async move { self.collect_target(&t, deadline).await })
            .buffer_unordered(self.settings.concurrency)
            .fold(false, |acc, dirty| async move { acc | dirty })
            .await;
        if changed {
            self.save_state().await;
        }
    }

    /// Targets whose collection a scrape asked for and has not finished yet.
    pub fn unfinished(&self) -> Vec<TargetLabels> {
        self.targets
            .iter()
            .filter(|t| t.pending.load(Ordering::Acquire))
            .map(|t| t.labels.clone())
            .collect()
    }

    /// Collects one target unless within `min_interval` of its last attempt
    /// or held back by the API budget. Returns whether its state changed.
    async fn collect_target(&self, target: &Target, deadline: Option<Instant>) -> bool {
        let span = tracing::info_span!(
            "collection",
            collector = %target.labels.collector,
            target = %target.labels.target,
            outcome = Empty,
            baseline = Empty,
            pages = Empty,
            events_new = Empty,
            events_seen = Empty,
            truncated = Empty,
            error_code = Empty,
        );
        self.collect_target_in_span(target, deadline, span.clone())
            .instrument(span)
            .await
    }

    async fn collect_target_in_span(
        &self,
        target: &Target,
        deadline: Option<Instant>,
        span: Span,
    ) -> bool {
        let _pending = PendingGuard(&target.pending);
        let mut st = target.state.lock().await;
        if target.retired.load(Ordering::Acquire) {
            // Replaced by a config reload while this scrape waited.
            span.record("outcome", "retired");
            return false;
        }
        let started = Instant::now();
        if let Some(last) = st.last_attempt
            && started.duration_since(last) < self.settings.min_interval
        {
            span.record("outcome", "reused");
            return false;
        }
        let budget = self.client.budget();
        let spec = &target.spec;
        let throttled = self
            .metrics
            .throttled
            .get_or_create_owned(&TargetOnlyLabels {
                target: spec.id.clone(),
            });
        if budget.hold(&spec.id, &spec.token).is_some() {
            // Serve the last values; no call, and `up` keeps the last collection's result.
            throttled.set(1);
            span.record("outcome", "throttled");
            return false;
        }
        st.last_attempt = Some(started);
        st.tally = Tally::default();
        span.record("baseline", !st.baseline_done);
        let edge = unix_now() - self.settings.lookback.as_secs() as i64;
        if st.seen.prune(edge) > 0 {
            st.dirty = true;
        }
        let (pages, result) = match target.spec.collector {
            CollectorKind::Activities => {
                activities::collect(self, target, &mut st, edge, deadline).await
            }
            CollectorKind::MessageHistory => {
                message_history::collect(self, target, &mut st, edge, deadline).await
            }
            // Listed by discovery, never configured as a target.
            CollectorKind::PhoneNumbers => (0, Ok(End::Exhausted)),
        };
        throttled.set(i64::from(budget.hold(&spec.id, &spec.token).is_some()));
        let m = &self.metrics;
        let l = &target.labels;
        m.scrape_duration
            .get_or_create(l)
            .set(started.elapsed().as_secs_f64());
        m.pages.get_or_create(l).inc_by(u64::from(pages));
        m.seen_events.get_or_create(l).set(st.seen.len() as i64);
        if let Some(t) = st.last_event {
            m.last_event.get_or_create(l).set(t as f64);
        }
        span.record("pages", pages);
        span.record("events_new", st.tally.new);
        span.record("events_seen", st.tally.seen);
        match result {
            Ok(end) => {
                span.record("outcome", "ok");
                span.record("truncated", end == End::MaxPages);
                m.up.get_or_create(l).set(1);
                m.last_success.get_or_create(l).set(unix_now_f64());
                if end == End::MaxPages {
                    m.truncated.get_or_create(l).inc();
                }
                if !st.baseline_done {
                    st.baseline_done = true;
                    st.dirty = true;
                    tracing::info!(
                        remembered = st.seen.len(),
                        "baseline established; counting new events from now on"
                    );
                }
                if let Some(code) = st.failing.take() {
                    tracing::info!(error_code = %code, "collection recovered");
                }
            }
            Err(GraphError::Throttled(wait)) => {
                // The budget ran out partway: what was read is counted, the
                // rest waits; no failed call was made, so `up` stays.
                span.record("outcome", "throttled");
                tracing::info!(resume_in = ?wait, "holding back to stay within the API budget");
            }
            Err(e) => {
                m.up.get_or_create(l).set(0);
                span.record("outcome", "failed");
                span.record("error_code", e.kind().as_str());
                span.set_status(Status::error(e.to_string()));
                self.report_failure(&mut st, &e);
            }
        }
        st.dirty
    }

    fn report_failure(&self, st: &mut TargetState, e: &GraphError) {
        let code = e.kind();
        if st.failing.as_deref() != Some(code.as_str()) {
            // The collection span carries collector, target and error_code.
            tracing::warn!(
                error = %e,
                hint = e.hint(),
                "collection failing"
            );
            st.failing = Some(code);
        }
    }

    /// Writes the state file (if configured) with every target whose baseline is done.
    pub async fn save_state(&self) {
        self.save_state_by(None).await;
    }

    /// Like [`Collectors::save_state`], but a target whose collection is
    /// still in flight at `deadline` keeps the record it had in the file,
    /// and with a deadline (shutdown) nothing is written when nothing changed
    /// since the last write: a stop before the first scrape keeps the records
    /// of numbers not discovered yet.
    pub async fn save_state_by(&self, deadline: Option<Instant>) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let mut file = StateFile {
            version: state_file::VERSION,
            ..Default::default()
        };
        let mut previous: Option<StateFile> = None;
        let mut changed = deadline.is_none();
        for t in &self.targets {
            let key = state_file::target_key(&t.labels.collector, &t.labels.target);
            let locked = match deadline {
                None => Some(t.state.lock().await),
                Some(d) => tokio::time::timeout_at(d.into(), t.state.lock()).await.ok(),
            };
            let Some(mut st) = locked else {
                changed = true;
                let prev =
                    previous.get_or_insert_with(|| state_file::load(&path).unwrap_or_default());
                tracing::warn!(collector = %t.labels.collector, target = %t.labels.target, "collection still in flight: its last saved state is kept");
                if let Some(rec) = prev.targets.remove(&key) {
                    file.targets.insert(key, rec);
                }
                continue;
            };
            if !st.baseline_done {
                continue;
            }
            changed |= st.dirty;
            st.dirty = false;
            file.targets.insert(
                key,
                TargetRecord {
                    last_event_timestamp: st.last_event,
                    seen: st.seen.entries().collect(),
                    partial: st.partial,
                },
            );
        }
        if !changed {
            return;
        }
        let result = tokio::task::spawn_blocking(move || state_file::save(&path, &file))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let label = match &result {
            Ok(()) => "success",
            Err(e) => {
                tracing::error!(error = %e, "cannot write the state file");
                "failure"
            }
        };
        self.metrics
            .state_writes
            .get_or_create(&ResultLabels {
                result: label.into(),
            })
            .inc();
    }
}

/// Now, in Unix seconds with a fraction (for `_timestamp_seconds` gauges).
pub(crate) fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
