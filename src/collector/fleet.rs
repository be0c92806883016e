//! The fleet: the one owner of the set of targets this process collects.
//!
//! It holds one [`Generation`] at a time behind one `Arc` swap. A scrape
//! takes the generation in force, lets discovery refresh it (under the
//! scrape deadline), and collects exactly the generation that comes out; a
//! reload builds the next generation from the configuration file. Swaps are
//! made one at a time; a target kept across a swap is the same target, so a
//! collection in flight during a swap loses nothing it saw. The fleet opens
//! the state store once; each collection writes what it changed to it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tracing::Instrument;

use crate::collector::collect;
use crate::collector::discovery::Discovery;
use crate::collector::fan_out::fan_out;
use crate::collector::generation::{Generation, Member, Parts};
use crate::collector::health::HealthChecks;
use crate::collector::settings::CollectSettings;
use crate::collector::store::{Opened, Store, StoreError};
use crate::config::{
    CollectorKind, Config, ConfigError, LoadedConfig, Shard, ShardError, TargetSpec,
};
use crate::graph::GraphClient;
use crate::graph::budget::{Budget, BudgetSettings};
use crate::metrics::{Metrics, TargetLabels};

/// How the fleet runs, besides the configuration file's contents.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// The file a reload reads again; `None` (demo, tests) cannot reload.
    pub config_file: Option<PathBuf>,
    /// `--shard`: overrides the config file's `shard:`.
    pub shard: Option<Shard>,
}

/// Which targets a scrape collects.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every target (`/metrics`), after a discovery refresh.
    All,
    /// One target (`/probe`).
    One(TargetLabels),
}

/// Why a configuration cannot be put in force (at start-up or by a reload).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Nothing was loaded from a file.
    #[error("no --config.file to reload (demo mode)")]
    NoConfigFile,
    /// The file is invalid.
    #[error("{}", .0.to_string().trim_end())]
    Config(#[from] ConfigError),
    /// The HTTP client cannot be built.
    #[error("cannot build the Graph API client: {0}")]
    Client(#[from] reqwest::Error),
    /// The shard cannot be determined.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The state store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The selected target is not collected by this process.
#[derive(Debug, thiserror::Error)]
#[error(
    "not collected by this process: not in the configuration, not discovered, or in another shard"
)]
pub struct NotCollected;

/// Every target of this process, one generation at a time.
pub struct Fleet {
    current: RwLock<Arc<Generation>>,
    metrics: Metrics,
    budget: Budget,
    options: FleetOptions,
    /// Account health checks, kept across generations.
    health: HealthChecks,
    /// One swap at a time (reload, discovery change).
    swap: tokio::sync::Mutex<()>,
}

impl Fleet {
    /// The fleet of a configuration: its first generation, restored from the state file.
    pub fn new(
        loaded: &LoadedConfig,
        options: FleetOptions,
        metrics: Metrics,
    ) -> Result<Fleet, FleetError> {
        let budget = Budget::new(BudgetSettings::from(&loaded.config.collect));
        let store = match &loaded.config.state_file {
            Some(path) => {
                let store = open_store(path, loaded)?;
                metrics.collection.store_opened();
                Some(Arc::new(store))
            }
            None => None,
        };
        let parts = parts(
            loaded,
            &budget,
            &metrics,
            options.shard,
            Arc::new(Discovery::new(loaded)),
            Vec::new(),
            store,
        )?;
        metrics
            .process
            .set_shard(parts.shard.map(|s| (s.index, s.count)));
        let first = Generation::first(parts, &metrics);
        metrics.process.loaded();
        Ok(Fleet {
            current: RwLock::new(Arc::new(first)),
            metrics,
            budget,
            options,
            health: HealthChecks::default(),
            swap: tokio::sync::Mutex::new(()),
        })
    }

    /// The generation in force.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn swap_in(&self, next: Arc<Generation>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Collects the selected targets that are due (and, for every target,
    /// the account health checks that are due), then writes the state
    /// file if anything changed. No retry starts after `deadline`; when it
    /// passes, returns the targets whose collection has not finished (it
    /// goes on, and warms the values the next scrape serves).
    pub async fn collect(
        self: &Arc<Self>,
        selection: Selection,
        deadline: Option<Instant>,
    ) -> Result<HashSet<TargetLabels>, NotCollected> {
        let first = self.current();
        let one = match &selection {
            Selection::All => None,
            Selection::One(l) => Some(first.find(l).ok_or(NotCollected)?.clone()),
        };
        match &one {
            Some(m) => m.target.mark_pending(),
            None => first.members().iter().for_each(|m| m.target.mark_pending()),
        }
        // The generation this scrape collects: the first one, or the one
        // discovery made of it.
        let collecting = Arc::new(Mutex::new(first.clone()));
        let task = {
            let fleet = self.clone();
            let collecting = collecting.clone();
            tokio::spawn(
                async move {
                    match one {
                        Some(m) => fleet.collect_members(&first, &[m], deadline).await,
                        None => {
                            let g = fleet.refresh_discovery(first, deadline).await;
                            g.members().iter().for_each(|m| m.target.mark_pending());
                            *collecting.lock().unwrap_or_else(|p| p.into_inner()) = g.clone();
                            fleet.collect_members(&g, g.members(), deadline).await;
                            fleet.health.refresh(&g, &fleet.metrics, deadline).await;
                        }
                    }
                }
                .instrument(tracing::Span::current()),
            )
        };
        let joined = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), task).await,
            None => Ok(task.await),
        };
        Ok(match joined {
            Ok(Ok(())) => HashSet::new(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "collection task failed");
                HashSet::new()
            }
            Err(_) => {
                let g = collecting.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let unfinished = g.unfinished();
                tracing::warn!(
                    unfinished = unfinished.len(),
                    "scrape deadline reached: serving the last values, unfinished targets report whatsapp_up 0"
                );
                unfinished
            }
        })
    }

    /// Collects `members`, at most `collect.concurrency` at a time, each
    /// target a task of its own.
    async fn collect_members(
        self: &Arc<Self>,
        g: &Arc<Generation>,
        members: &[Member],
        deadline: Option<Instant>,
    ) {
        fan_out(members.iter().cloned(), g.settings.concurrency, |m| {
            let (fleet, g) = (self.clone(), g.clone());
            async move { collect::collect(&g, &m, &fleet.metrics, deadline).await }
        })
        .await;
    }

    /// Lists phone numbers if `discovery.interval` has passed; when the
    /// discovered numbers changed, swaps in the generation with the new
    /// target list. Returns the generation to collect.
    async fn refresh_discovery(
        &self,
        g: Arc<Generation>,
        deadline: Option<Instant>,
    ) -> Arc<Generation> {
        if !g
            .discovery
            .refresh(&g.client, &self.metrics.phones, deadline)
            .await
        {
            return g;
        }
        let _one_at_a_time = self.swap.lock().await;
        let cur = self.current();
        if !Arc::ptr_eq(&cur.discovery, &g.discovery) {
            return cur; // a reload came first and took the new list over
        }
        let targets = in_shard(
            cur.shard,
            merge(&cur.configured, cur.discovery.targets().await),
        );
        let parts = Parts {
            targets,
            configured: cur.configured.clone(),
            discovery: cur.discovery.clone(),
            shard: cur.shard,
            client: cur.client.clone(),
            settings: cur.settings.clone(),
            store: cur.store.clone(),
        };
        let next = Arc::new(cur.next(parts, &self.metrics).await);
        self.swap_in(next.clone());
        next
    }

    /// Reads the configuration file again and switches to it: kept targets
    /// keep their counters and seen-state, removed ones disappear, new ones
    /// start with a baseline. A bad file changes nothing. Returns the number
    /// of targets.
    pub async fn reload(&self) -> Result<usize, FleetError> {
        let Some(path) = self.options.config_file.clone() else {
            // Nothing was loaded from a file: nothing to reload, no failure to record.
            return Err(FleetError::NoConfigFile);
        };
        let _one_at_a_time = self.swap.lock().await;
        let result = self.try_reload(&path).await;
        match &result {
            Ok(n) => {
                self.metrics.process.loaded();
                tracing::info!(targets = n, "configuration reloaded");
            }
            Err(e) => {
                self.metrics.process.reload_failed();
                tracing::error!(error = %e, "configuration reload failed; the previous configuration stays in force");
            }
        }
        result
    }

    async fn try_reload(&self, path: &std::path::Path) -> Result<usize, FleetError> {
        let loaded = Config::load(path)?;
        let cur = self.current();
        let discovery = Arc::new(Discovery::new(&loaded));
        discovery.take_over(&cur.discovery).await;
        let discovered = discovery.targets().await;
        if loaded.config.state_file != cur.store.as_ref().map(|s| s.path().to_path_buf()) {
            tracing::warn!("state_file changed: the new path takes effect at the next start");
        }
        let parts = parts(
            &loaded,
            &self.budget,
            &self.metrics,
            self.options.shard,
            discovery,
            discovered,
            cur.store.clone(),
        )?;
        let shard = parts.shard;
        let next = Arc::new(cur.next(parts, &self.metrics).await);
        let n = next.members().len();
        self.swap_in(next);
        self.metrics
            .process
            .set_shard(shard.map(|s| (s.index, s.count)));
        Ok(n)
    }

    /// At shutdown: waits (until `deadline`) for the state store's writes
    /// in flight and closes it. A collection still running after that
    /// cannot write; what it found is read again after the restart.
    pub async fn close(&self, deadline: Instant) {
        let Some(store) = self.current().store.clone() else {
            return;
        };
        if tokio::time::timeout_at(deadline.into(), store.close())
            .await
            .is_err()
        {
            tracing::warn!("state store writes still in progress at the shutdown timeout");
        }
    }
}

/// The parts of a generation for `loaded`, with the targets `discovered` so far.
fn parts(
    loaded: &LoadedConfig,
    budget: &Budget,
    metrics: &Metrics,
    shard_flag: Option<Shard>,
    discovery: Arc<Discovery>,
    discovered: Vec<TargetSpec>,
    store: Option<Arc<Store>>,
) -> Result<Parts, FleetError> {
    // A reload must not forget holds and call counts: the budget's state is shared.
    let budget = Arc::new(budget.with_settings(BudgetSettings::from(&loaded.config.collect)));
    let client = GraphClient::new(&loaded.config.graph_api, budget, metrics.api.clone())?;
    let shard = effective_shard(shard_flag, loaded)?;
    metrics
        .api
        .set_max_label_values(loaded.config.collect.max_label_values);
    Ok(Parts {
        targets: in_shard(shard, merge(&loaded.targets, discovered)),
        configured: loaded.targets.clone(),
        discovery,
        shard,
        client,
        settings: CollectSettings::from(loaded),
        store,
    })
}

/// Opens the state store at `path`, saying how it was found.
fn open_store(path: &std::path::Path, loaded: &LoadedConfig) -> Result<Store, StoreError> {
    let edge = CollectSettings::from(loaded).edge();
    let (store, opened) = Store::open(path, edge)?;
    let path = path.display();
    match opened {
        Opened::New => tracing::info!(%path, "state store created"),
        Opened::Existing => tracing::info!(%path, "state store opened"),
        Opened::Imported { targets, migrated } => tracing::info!(
            %path,
            targets,
            migrated = %migrated.display(),
            "JSON state file imported into the state store; the JSON file is kept"
        ),
        // Logged as an error where it was moved.
        Opened::SetAside { .. } => {}
    }
    Ok(store)
}

/// `--shard` if given, else the config file's `shard:`.
fn effective_shard(
    flag: Option<Shard>,
    loaded: &LoadedConfig,
) -> Result<Option<Shard>, ShardError> {
    match (flag, &loaded.config.shard) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(c)) => Shard::from_config(c, |k| std::env::var(k).ok()).map(Some),
        (None, None) => Ok(None),
    }
}

/// The targets of `shard` (all of them when not sharded).
fn in_shard(shard: Option<Shard>, targets: Vec<TargetSpec>) -> Vec<TargetSpec> {
    match shard {
        Some(s) => targets.into_iter().filter(|t| s.owns(t)).collect(),
        None => targets,
    }
}

/// The configured targets, then the discovered ones not configured already.
fn merge(configured: &[TargetSpec], discovered: Vec<TargetSpec>) -> Vec<TargetSpec> {
    let mut seen: HashSet<(CollectorKind, String)> = configured
        .iter()
        .map(|t| (t.collector, t.id.clone()))
        .collect();
    let mut out = configured.to_vec();
    out.extend(
        discovered
            .into_iter()
            .filter(|t| seen.insert((t.collector, t.id.clone()))),
    );
    out
}
