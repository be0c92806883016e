//! Account health, on its own slow schedule (`health.interval`, default
//! 10m): for every phone number target, its health status
//! (`GET /{Phone-Number-ID}?fields=health_status`); for every account, its
//! message templates (`GET /{WABA-ID}/message_templates`). Each is a check
//! with its own `whatsapp_up{collector="health"|"templates", target}`; its
//! calls go through the client's budget like a collection's, and a check
//! whose target is held back by the budget waits. A failed check keeps the
//! last values shown and is tried again after `collect.min_interval`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::Instrument;

use crate::collector::fan_out::fan_out;
use crate::collector::generation::Generation;
use crate::config::{CollectorKind, TargetSpec};
use crate::error::GraphError;
use crate::graph::model::{HealthNode, Template};
use crate::graph::{Edge, EdgeRequest, End, Pager};
use crate::metrics::health::{EntityReport, ListedTemplate};
use crate::metrics::labels::{HEALTH, LabelCap, TEMPLATES, label_str, label_value};
use crate::metrics::{Metrics, TargetLabels, unix_now};

/// The longest wait before a check is due again.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `fields=` of the template listing.
pub const TEMPLATE_FIELDS: &str = "id,name,language,category,status,quality_score";

/// What one check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A phone number's health status.
    Health,
    /// An account's templates.
    Templates,
}

/// One check: of a message_history target (health) or an activities target (templates).
#[derive(Debug, Clone)]
struct Check {
    kind: Kind,
    spec: TargetSpec,
    labels: TargetLabels,
}

impl Check {
    fn of(spec: &TargetSpec) -> Check {
        let (kind, collector) = match spec.collector {
            CollectorKind::MessageHistory => (Kind::Health, HEALTH),
            CollectorKind::Activities => (Kind::Templates, TEMPLATES),
        };
        Check {
            kind,
            labels: TargetLabels {
                collector,
                target: spec.id.clone(),
            },
            spec: spec.clone(),
        }
    }
}

/// How a check went.
enum Outcome {
    /// Entities reported by a number's health status.
    Health(Vec<EntityReport>),
    /// The templates were recorded.
    Templates,
    /// The budget ran out: nothing shown changes, the check waits.
    Throttled,
    /// Failed: `up` 0, tried again after `collect.min_interval`.
    Failed,
}

#[derive(Debug, Default)]
struct State {
    /// When each check is due next.
    due: HashMap<TargetLabels, Instant>,
    /// The entities each number reported last, with when.
    reports: HashMap<String, (Instant, Vec<EntityReport>)>,
}

/// The checks of this process; kept across generations, so a reload or a
/// discovery change does not read everything again.
#[derive(Debug, Default)]
pub struct HealthChecks {
    state: Mutex<State>,
}

impl HealthChecks {
    /// Runs the checks of `g`'s targets that are due; forgets the checks
    /// (and series) of targets `g` no longer has. One round at a time: a
    /// scrape that finds a round running leaves it to it.
    pub async fn refresh(&self, g: &Arc<Generation>, metrics: &Metrics, deadline: Option<Instant>) {
        let Ok(mut st) = self.state.try_lock() else {
            return;
        };
        let checks: Vec<Check> = match g.settings.health_interval {
            Some(_) => g.members().iter().map(|m| Check::of(&m.spec)).collect(),
            None => Vec::new(),
        };
        let wanted: HashSet<&TargetLabels> = checks.iter().map(|c| &c.labels).collect();
        let gone: Vec<TargetLabels> = st
            .due
            .keys()
            .filter(|l| !wanted.contains(l))
            .cloned()
            .collect();
        // Whether the entities shown change: a number's report came or went.
        let mut changed = false;
        for l in &gone {
            st.due.remove(l);
            metrics.collection.forget_target(l);
            match l.collector {
                HEALTH => changed |= st.reports.remove(&l.target).is_some(),
                _ => metrics.health.forget_templates(&l.target),
            }
        }
        let now = Instant::now();
        // A check whose target the budget holds back makes no call: the
        // client answers it `Throttled`, and it stays due.
        let due: Vec<Check> = checks
            .iter()
            .filter(|c| st.due.get(&c.labels).is_none_or(|t| *t <= now))
            .cloned()
            .collect();
        if !due.is_empty() {
            let done: Vec<(Check, Outcome)> = fan_out(due, g.settings.concurrency, |c| {
                let (g, metrics) = (g.clone(), metrics.clone());
                async move {
                    let span = tracing::info_span!(
                        "health_check",
                        collector = c.labels.collector,
                        target = %c.spec.id
                    );
                    let outcome = run(&c, &g, &metrics, deadline).instrument(span).await;
                    (c, outcome)
                }
            })
            .await;
            let at = Instant::now();
            // A configured wait of centuries is a century: `Instant` cannot hold more.
            let after = |d: Duration| at.checked_add(d.min(CENTURY)).unwrap_or(at);
            let interval = after(g.settings.health_interval.unwrap_or(CENTURY));
            for (c, outcome) in done {
                let next = match outcome {
                    Outcome::Health(entities) => {
                        changed = true;
                        st.reports.insert(c.spec.id.clone(), (at, entities));
                        interval
                    }
                    Outcome::Templates => interval,
                    Outcome::Failed => after(g.settings.min_interval),
                    Outcome::Throttled => now,
                };
                st.due.insert(c.labels.clone(), next);
            }
        }
        if changed {
            let mut newest: Vec<&(Instant, Vec<EntityReport>)> = st.reports.values().collect();
            newest.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            metrics
                .health
                .publish(newest.into_iter().flat_map(|(_, e)| e));
        }
    }
}

/// Runs one check and records how it went on its target's series.
async fn run(c: &Check, g: &Generation, metrics: &Metrics, deadline: Option<Instant>) -> Outcome {
    let started = Instant::now();
    let req = |edge, fields| EdgeRequest {
        client: &g.client,
        edge,
        id: &c.spec.id,
        token: &c.spec.token,
        fields,
        limit: g.settings.page_size,
        deadline,
    };
    let m = &metrics.collection;
    let l = &c.labels;
    let mut invalid: HashMap<&'static str, u64> = HashMap::new();
    let result = match c.kind {
        Kind::Health => g
            .client
            .get_node::<HealthNode>(&req(Edge::HealthStatus, "health_status"))
            .await
            .map(|node| {
                m.pages.get_or_create(l).inc();
                Outcome::Health(entities(node, g.settings.max_label_values, &mut invalid))
            }),
        Kind::Templates => {
            let mut pager = Pager::new(
                req(Edge::MessageTemplates, TEMPLATE_FIELDS),
                g.settings.max_pages,
            );
            let mut listed = Vec::new();
            let walked = loop {
                match pager.next_page::<Template>().await {
                    Ok(Some(page)) => {
                        for reason in page.invalid {
                            *invalid.entry(reason).or_default() += 1;
                        }
                        listed.extend(page.data.iter().filter_map(|t| template(t, &mut invalid)));
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            m.pages.get_or_create(l).inc_by(u64::from(pager.pages()));
            walked.map(|()| {
                let complete = pager.end() != End::MaxPages;
                if !complete {
                    m.truncated.get_or_create(l).inc();
                    tracing::warn!(waba_id = %c.spec.id, templates = listed.len(), "template listing stopped at collect.max_pages: templates not listed keep their last series");
                }
                metrics
                    .health
                    .record_templates(&c.spec.id, &listed, complete);
                Outcome::Templates
            })
        }
    };
    for (reason, n) in invalid {
        m.invalid_records(l, reason, n);
    }
    m.duration
        .get_or_create(l)
        .set(started.elapsed().as_secs_f64());
    match result {
        Ok(outcome) => {
            m.up.get_or_create(l).set(1);
            m.last_success.get_or_create(l).set(unix_now());
            outcome
        }
        Err(GraphError::Throttled(wait)) => {
            tracing::info!(resume_in = ?wait, "holding back to stay within the API budget");
            Outcome::Throttled
        }
        Err(e) => {
            m.up.get_or_create(l).set(0);
            tracing::warn!(error = %e, hint = e.hint(), "account health check failed; its last values stay");
            Outcome::Failed
        }
    }
}

/// The entities of a health answer as their series label them: those past
/// `cap` are left out (`too_many_entities`), an entity without
/// `can_send_message` is shown as `unknown` and counted (`no_can_send_message`).
fn entities(
    node: HealthNode,
    cap: usize,
    invalid: &mut HashMap<&'static str, u64>,
) -> Vec<EntityReport> {
    for reason in node.invalid {
        *invalid.entry(reason).or_default() += 1;
    }
    let mut out = Vec::new();
    for e in node.entities {
        if out.len() >= cap {
            *invalid.entry("too_many_entities").or_default() += 1;
            continue;
        }
        if e.can_send_message.is_none() {
            *invalid.entry("no_can_send_message").or_default() += 1;
        }
        let mut codes = LabelCap::default();
        let mut error_codes: Vec<String> = e
            .error_codes()
            .iter()
            .map(|code| codes.admit(label_str(Some(code)), cap))
            .collect();
        error_codes.sort();
        error_codes.dedup();
        out.push(EntityReport {
            entity_type: label_value(e.entity_type.as_deref()),
            entity_id: label_value(e.id.as_deref()),
            state: label_value(e.can_send_message.as_deref()),
            error_codes,
        });
    }
    out
}

/// A listed template as its series label it; one without an id is skipped (`no_id`).
fn template(t: &Template, invalid: &mut HashMap<&'static str, u64>) -> Option<ListedTemplate> {
    let Some(id) = t.id.as_deref().filter(|id| !id.trim().is_empty()) else {
        *invalid.entry("no_id").or_default() += 1;
        return None;
    };
    Some(ListedTemplate {
        id: label_value(Some(id)),
        name: label_value(t.name.as_deref()),
        language: label_value(t.language.as_deref()),
        category: label_value(t.category.as_deref()),
        status: label_value(t.status.as_deref()),
        score: label_value(t.score()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::Body;

    #[test]
    fn entities_and_their_error_codes_are_capped_per_number() {
        let list: Vec<String> = (0..5)
            .map(|i| {
                let errors: Vec<String> = (0..4)
                    .map(|c| format!(r#"{{"error_code": {}}}"#, 141_000 + c))
                    .collect();
                format!(
                    r#"{{"entity_type": "WABA", "id": "{i}", "can_send_message": "BLOCKED", "errors": [{}]}}"#,
                    errors.join(",")
                )
            })
            .collect();
        let body = format!(
            r#"{{"health_status": {{"entities": [{}, {{"id": "9"}}]}}}}"#,
            list.join(",")
        );
        let node = HealthNode::decode(body.as_bytes()).unwrap();
        let mut invalid = HashMap::new();
        let out = entities(node, 3, &mut invalid);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].error_codes, ["141000", "141001", "141002", "other"]);
        assert_eq!(invalid.get("too_many_entities"), Some(&3));
        assert_eq!(
            invalid.get("no_can_send_message"),
            None,
            "the capped one is not looked at"
        );
    }
}
