//! One generation of targets: the targets this process collects with the
//! client, settings, discovery and shard they are collected with. A reload
//! or a discovery change builds the next generation and the fleet swaps it
//! in whole; a target kept from one generation to the next is the same
//! [`Target`] (its state, its collection in flight), so nothing it saw is lost.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::collector::activities::ActivitiesCollector;
use crate::collector::discovery::Discovery;
use crate::collector::message_history::MessageHistoryCollector;
use crate::collector::settings::CollectSettings;
use crate::collector::state_file::{self, StateFile};
use crate::collector::target::{Target, TargetState};
use crate::config::{Shard, TargetSpec};
use crate::graph::GraphClient;
use crate::metrics::{CollectionMetrics, Metrics, TargetLabels};

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
    /// `state_file:`.
    pub state_file: Option<PathBuf>,
}

/// One generation: immutable once built.
pub struct Generation {
    members: Vec<Member>,
    pub(super) configured: Vec<TargetSpec>,
    pub(super) discovery: Arc<Discovery>,
    pub(super) shard: Option<Shard>,
    pub(super) client: GraphClient,
    pub(super) settings: CollectSettings,
    pub(super) state_file: Option<PathBuf>,
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
            state_file: parts.state_file,
        }
    }

    /// The first generation of the process: every target restored from the
    /// state file if it has a record there (an unusable file is set aside).
    pub fn first(parts: Parts, metrics: &Metrics) -> Generation {
        let mut saved = parts
            .state_file
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
        let edge = parts.settings.edge();
        let members = parts
            .targets
            .iter()
            .map(|spec| fresh(metrics, spec, &mut saved, edge))
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
        let mut saved: Option<StateFile> = None;
        let edge = parts.settings.edge();
        let mut members = Vec::with_capacity(parts.targets.len());
        for spec in &parts.targets {
            match old.remove(&TargetLabels::from(spec)) {
                Some(kept) => members.push(Member {
                    spec: spec.clone(),
                    target: kept.target.clone(),
                }),
                None => {
                    let file = saved.get_or_insert_with(|| {
                        parts
                            .state_file
                            .as_deref()
                            .and_then(|p| state_file::load(p).ok())
                            .unwrap_or_default()
                    });
                    members.push(fresh(metrics, spec, file, edge));
                }
            }
        }
        let ids: HashSet<&str> = parts.targets.iter().map(|s| s.id.as_str()).collect();
        for gone in old.into_values() {
            gone.target.retire().await;
            let l = &gone.target.labels;
            metrics.forget_target(l, ids.contains(l.target.as_str()));
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

    /// Writes the state file (if configured) with every target whose
    /// baseline is done. With a `deadline` (shutdown), a target whose
    /// collection is still in flight then keeps the record it had in the
    /// file, and nothing is written when nothing (not even a sweep's
    /// position) changed since the last write: a stop before the first scrape keeps the records of numbers
    /// not discovered yet.
    pub async fn save_state(&self, metrics: &CollectionMetrics, deadline: Option<Instant>) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let mut file = StateFile {
            version: state_file::VERSION,
            ..Default::default()
        };
        let mut previous: Option<StateFile> = None;
        let mut changed = deadline.is_none();
        for m in &self.members {
            let l = &m.target.labels;
            let key = state_file::target_key(l.collector, &l.target);
            let locked = match deadline {
                None => Some(m.target.state.lock().await),
                Some(d) => tokio::time::timeout_at(d.into(), m.target.state.lock())
                    .await
                    .ok(),
            };
            let Some(mut st) = locked else {
                changed = true;
                let prev =
                    previous.get_or_insert_with(|| state_file::load(&path).unwrap_or_default());
                tracing::warn!(collector = l.collector, target = %l.target, "collection still in flight: its last saved state is kept");
                if let Some(rec) = prev.targets.remove(&key) {
                    file.targets.insert(key, rec);
                }
                continue;
            };
            if !st.baseline_done {
                continue;
            }
            // At shutdown, a sweep's progress is worth a write of its own.
            changed |= st.dirty || (deadline.is_some() && st.sweep_moved);
            st.dirty = false;
            st.sweep_moved = false;
            file.targets.insert(key, st.record());
        }
        if !changed {
            return;
        }
        let result = tokio::task::spawn_blocking(move || state_file::save(&path, &file))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot write the state file");
        }
        metrics.state_written(result.is_ok());
    }
}

/// A target new to this process: its series created, and its record in the
/// state file (`saved`), if any, restored and pruned at `edge`.
fn fresh(metrics: &Metrics, spec: &TargetSpec, saved: &mut StateFile, edge: i64) -> Member {
    let collector = spec.collector.as_str();
    let state = saved
        .targets
        .remove(&state_file::target_key(collector, &spec.id))
        .map(|rec| TargetState::restored(rec, edge))
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
