//! One generation of targets: the targets this process collects with the
//! client, settings, discovery and shard they are collected with. A reload
//! or a discovery change builds the next generation and the fleet swaps it
//! in whole; a target kept from one generation to the next is the same
//! [`Target`] (its state, its collection in flight), so nothing it saw is lost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::collector::activities::ActivitiesCollector;
use crate::collector::discovery::Discovery;
use crate::collector::message_history::MessageHistoryCollector;
use crate::collector::settings::CollectSettings;
use crate::collector::state_file;
use crate::collector::store::Store;
use crate::collector::target::{Target, TargetState};
use crate::config::{Shard, TargetSpec};
use crate::graph::GraphClient;
use crate::metrics::{Metrics, TargetLabels};

/// A target of a generation: what to collect and its state.
#[derive(Debug, Clone)]
pub struct Member {
    /// What to collect, with which token.
    pub spec: TargetSpec,
    /// Its state, shared with the generations that keep it.
    pub target: Arc<Target>,
}

/// What a generation is made of, besides the state of its targets.
pub struct Parts {
    /// The targets to collect: configured, then discovered, in this shard.
    pub targets: Vec<TargetSpec>,
    /// The targets the configuration file names.
    pub configured: Vec<TargetSpec>,
    /// Phone number listing.
    pub discovery: Arc<Discovery>,
    /// The shard collected, if sharded.
    pub shard: Option<Shard>,
    /// The Graph API client.
    pub client: GraphClient,
    /// `collect:`.
    pub settings: CollectSettings,
    /// The state store (`state_file:`), opened once for the process.
    pub store: Option<Arc<Store>>,
}

/// One generation: immutable once built.
pub struct Generation {
    members: Vec<Member>,
    pub(super) configured: Vec<TargetSpec>,
    pub(super) discovery: Arc<Discovery>,
    pub(super) shard: Option<Shard>,
    pub(super) client: GraphClient,
    pub(super) settings: CollectSettings,
    pub(super) store: Option<Arc<Store>>,
    pub(super) activities: ActivitiesCollector,
    pub(super) message_history: MessageHistoryCollector,
}

impl Generation {
    fn assemble(parts: Parts, members: Vec<Member>, metrics: &Metrics) -> Generation {
        let s = &parts.settings;
        Generation {
            activities: ActivitiesCollector::new(metrics.events.clone()),
            message_history: MessageHistoryCollector::new(
                metrics.events.clone(),
                s.webhook_failure_states.clone(),
                s.max_error_labels,
                s.undelivered_after,
            ),
            members,
            configured: parts.configured,
            discovery: parts.discovery,
            shard: parts.shard,
            client: parts.client,
            settings: parts.settings,
            store: parts.store,
        }
    }

    /// The first generation of the process: every target restored from its
    /// record in the state store, if it has one.
    pub fn first(parts: Parts, metrics: &Metrics) -> Generation {
        let window = (parts.settings.edge(), parts.settings.ceiling());
        let members = parts
            .targets
            .iter()
            .map(|spec| fresh(metrics, spec, parts.store.as_deref(), window))
            .collect();
        Generation::assemble(parts, members, metrics)
    }

    /// The generation after this one: a target kept is the same target
    /// (seen-state, baseline, collection in flight; its counters stay), a
    /// removed one is retired (after its collection in flight) and its series
    /// removed, a new one starts with a baseline or resumes from its record
    /// in the state file (a discovered number after a restart, a target put back).
    pub async fn next(&self, parts: Parts, metrics: &Metrics) -> Generation {
        let mut old: HashMap<&TargetLabels, &Member> =
            self.members.iter().map(|m| (&m.target.labels, m)).collect();
        let window = (parts.settings.edge(), parts.settings.ceiling());
        let mut members = Vec::with_capacity(parts.targets.len());
        for spec in &parts.targets {
            match old.remove(&TargetLabels::from(spec)) {
                Some(kept) => members.push(Member {
                    spec: spec.clone(),
                    target: kept.target.clone(),
                }),
                None => members.push(fresh(metrics, spec, parts.store.as_deref(), window)),
            }
        }
        let ids: HashSet<&str> = parts.targets.iter().map(|s| s.id.as_str()).collect();
        for gone in old.into_values() {
            gone.target.retire().await;
            let l = &gone.target.labels;
            metrics.forget_target(l, ids.contains(l.target.as_str()));
        }
        // A removed target's record stays (it may come back) until it falls behind the lookback.
        if let Some(store) = &parts.store {
            let keep = members
                .iter()
                .map(|m| state_file::target_key(m.target.labels.collector, &m.target.labels.target))
                .collect();
            store.forget_before(window.0, keep);
        }
        Generation::assemble(parts, members, metrics)
    }

    /// Its targets.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The target with these labels, if this generation collects it.
    pub fn find(&self, l: &TargetLabels) -> Option<&Member> {
        self.members.iter().find(|m| m.target.labels == *l)
    }

    /// Targets whose collection a scrape asked for and has not finished yet.
    pub fn unfinished(&self) -> HashSet<TargetLabels> {
        self.members
            .iter()
            .filter(|m| m.target.is_pending())
            .map(|m| m.target.labels.clone())
            .collect()
    }
}

/// A target new to this process: its series created, and its record in the
/// state store, if any, restored and pruned to the window from `edge` to `ceiling`. A record that cannot
/// be read is logged and the target takes a baseline.
fn fresh(
    metrics: &Metrics,
    spec: &TargetSpec,
    store: Option<&Store>,
    (edge, ceiling): (i64, i64),
) -> Member {
    let key = state_file::target_key(spec.collector.as_str(), &spec.id);
    let saved = store.and_then(|s| match s.load(&key) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(collector = spec.collector.as_str(), target = %spec.id, error = %e, "cannot read the target's saved state; it takes a baseline");
            None
        }
    });
    let state = saved
        .map(|rec| TargetState::restored(rec, edge, ceiling))
        .unwrap_or_default();
    let last_event = state.last_event;
    let target = Arc::new(Target::new(spec, state));
    metrics.init_target(&target.labels);
    if let Some(t) = last_event {
        metrics
            .collection
            .last_event
            .get_or_create(&target.labels)
            .set(t as f64);
    }
    Member {
        spec: spec.clone(),
        target,
    }
}
