//! `collect:` in the form the collectors use, the lookback edge, and how far
//! a collection reads.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::collector::sweep::Reach;
use crate::config::LoadedConfig;

/// Settings of `collect:` in the form the collectors use.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// `limit=`.
    pub page_size: u32,
    /// Pages of one walk (baseline, head, one whole sweep).
    pub max_pages: u32,
    /// Sweep pages per collection after the head.
    pub sweep_pages: u32,
    /// The head reads on past pages with messages younger than this.
    pub head_age: Duration,
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
    /// Distinct values of every other API-derived label per target.
    pub max_label_values: usize,
    /// When a SENT message without an end state counts as undelivered.
    pub undelivered_after: Duration,
    /// `health.interval`, or `None` when `health.enabled` is false.
    pub health_interval: Option<Duration>,
}

impl From<&LoadedConfig> for CollectSettings {
    fn from(loaded: &LoadedConfig) -> Self {
        let c = &loaded.config.collect;
        CollectSettings {
            page_size: c.page_size,
            max_pages: c.max_pages,
            sweep_pages: c.sweep_pages,
            head_age: c.head_age,
            lookback: c.lookback,
            min_interval: c.min_interval,
            concurrency: c.concurrency,
            webhook_failure_states: c.webhook_failure_states.iter().cloned().collect(),
            max_error_labels: c.max_error_labels,
            max_label_values: c.max_label_values,
            undelivered_after: c.undelivered_after,
            health_interval: loaded
                .config
                .health
                .enabled
                .then_some(loaded.config.health.interval),
        }
    }
}

impl CollectSettings {
    /// How far a collection starting at `now` (unix seconds) reads.
    pub fn reach(&self, now: f64) -> Reach {
        Reach {
            max_pages: self.max_pages,
            sweep_pages: self.sweep_pages,
            head_age: i64::try_from(self.head_age.as_secs()).unwrap_or(i64::MAX),
            now,
        }
    }

    /// The lookback edge now, in unix seconds.
    pub fn edge(&self) -> i64 {
        unix_now() - self.lookback.as_secs() as i64
    }

    /// As far ahead of now as the lookback reaches behind: no event is
    /// remembered as later than this.
    pub fn ceiling(&self) -> i64 {
        unix_now() + self.lookback.as_secs() as i64
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
