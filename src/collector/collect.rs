//! The collection of one target: unless within `collect.min_interval` of its
//! last attempt or held back by the API budget, walk its pages with its
//! collector and record how it went (`up`, duration, pages, truncation,
//! sweeps), in a `collection` span.

use opentelemetry::trace::Status;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use std::time::Instant;

use crate::collector::driver::{Collect, run};
use crate::collector::generation::{Generation, Member};
use crate::collector::state_file;
use crate::collector::sweep::Walked;
use crate::collector::target::{TargetState, Walk};
use crate::config::CollectorKind;
use crate::error::GraphError;
use crate::graph::{EdgeRequest, Pager};
use crate::metrics::{Metrics, unix_now};

/// Collects `member` of generation `g`, and writes what changed to the state
/// store before it returns (so what a scrape shows is durable).
pub async fn collect(
    g: &Generation,
    member: &Member,
    metrics: &Metrics,
    deadline: Option<Instant>,
) {
    let l = &member.target.labels;
    let span = tracing::info_span!(
        "collection",
        collector = l.collector,
        target = %l.target,
        outcome = Empty,
        baseline = Empty,
        pages = Empty,
        events_new = Empty,
        events_seen = Empty,
        events_changed = Empty,
        truncated = Empty,
        sweep = Empty,
        error_code = Empty,
    );
    collect_in_span(g, member, metrics, deadline, span.clone())
        .instrument(span)
        .await
}

async fn collect_in_span(
    g: &Generation,
    member: &Member,
    metrics: &Metrics,
    deadline: Option<Instant>,
    span: Span,
) {
    let target = &member.target;
    let spec = &member.spec;
    let _pending = target.pending_guard();
    let mut st = target.state.lock().await;
    if target.is_retired() {
        // Dropped by a reload or discovery while this scrape waited.
        span.record("outcome", "retired");
        return;
    }
    let started = Instant::now();
    if let Some(last) = st.last_attempt
        && started.duration_since(last) < g.settings.min_interval
    {
        span.record("outcome", "reused");
        return;
    }
    let budget = g.client.budget();
    if budget.hold(&spec.id, &spec.token).is_some() {
        // Serve the last values; no call, and `up` keeps the last collection's result.
        metrics.api.set_throttled(&spec.id, true);
        span.record("outcome", "throttled");
        return;
    }
    st.last_attempt = Some(started);
    st.label_cap = g.settings.max_label_values;
    span.record("baseline", !st.baseline_done);
    let mut walk = st.begin(g.settings.edge(), g.settings.ceiling());
    let (pages, result) = match spec.collector {
        CollectorKind::Activities => {
            walk_edge(&g.activities, g, member, &mut st, &mut walk, deadline).await
        }
        CollectorKind::MessageHistory => {
            walk_edge(&g.message_history, g, member, &mut st, &mut walk, deadline).await
        }
    };
    let baseline_established = st.finish(&walk, result.is_ok());
    metrics
        .api
        .set_throttled(&spec.id, budget.hold(&spec.id, &spec.token).is_some());
    let m = &metrics.collection;
    let l = &target.labels;
    m.duration
        .get_or_create(l)
        .set(started.elapsed().as_secs_f64());
    m.pages.get_or_create(l).inc_by(u64::from(pages));
    m.seen_events.get_or_create(l).set(st.seen.len() as i64);
    if let Some(t) = st.last_event {
        m.last_event.get_or_create(l).set(t as f64);
    }
    for (reason, n) in &st.tally.invalid {
        m.invalid_records(l, reason, *n);
    }
    span.record("pages", pages);
    span.record("events_new", st.tally.new);
    span.record("events_seen", st.tally.seen);
    span.record("events_changed", st.tally.changed);
    match result {
        Ok(walked) => {
            span.record("outcome", "ok");
            span.record("truncated", walked.truncated);
            span.record("sweep", walked.step.as_str());
            m.up.get_or_create(l).set(1);
            m.last_success.get_or_create(l).set(unix_now());
            if walked.truncated {
                m.truncated.get_or_create(l).inc();
            }
            if let Some(took) = walked.swept {
                m.sweep_duration.get_or_create(l).set(took);
            }
            if baseline_established {
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
            span.record("error_code", e.error_code().as_ref());
            span.set_status(Status::error(e.to_string()));
            report_failure(&mut st, &e);
        }
    }
    if let Some(store) = &g.store {
        let key = state_file::target_key(l.collector, &l.target);
        if let Some(write) = st.store_write(key, unix_now() as i64) {
            let result = store.write(write).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "cannot write the target's state to the state store; the next collection writes all of it");
            }
            st.written(result.is_ok());
            m.state_written(result.is_ok());
        }
    }
}

/// Walks `member`'s edge with `collector`; returns the pages fetched and how it went.
async fn walk_edge<C: Collect>(
    collector: &C,
    g: &Generation,
    member: &Member,
    st: &mut TargetState,
    walk: &mut Walk,
    deadline: Option<Instant>,
) -> (u32, Result<Walked, GraphError>) {
    let spec = &member.spec;
    let mut pager = Pager::new(
        EdgeRequest {
            client: &g.client,
            edge: C::EDGE,
            id: &spec.id,
            token: &spec.token,
            fields: C::FIELDS,
            limit: g.settings.page_size,
            deadline,
        },
        g.settings.max_pages,
    );
    let reach = g.settings.reach(unix_now());
    let result = run(collector, &mut pager, &spec.id, st, walk, &reach).await;
    collector.settle(&spec.id, st, walk, crate::collector::settings::unix_now());
    (pager.pages(), result)
}

/// Logs a failure once per failure state (the span carries collector, target and error_code).
fn report_failure(st: &mut TargetState, e: &GraphError) {
    let code = e.error_code();
    if st.failing.as_deref() != Some(code.as_ref()) {
        tracing::warn!(error = %e, hint = e.hint(), "collection failing");
        st.failing = Some(code.into_owned());
    }
}
