//! Collection: the fleet of targets this process collects, and for each,
//! fetch the recent pages, count what is new exactly once, and record how
//! the collection went.
//!
//! [`Fleet`] owns one generation of targets at a time (collectors,
//! discovery, shard, the configured set), swapped whole by a reload or a
//! discovery change. A collection of one target ([`collect`]) checks the
//! reuse window and the budget, then runs the one [`driver`] with the
//! target's collector ([`activities`] or [`message_history`]) over the
//! synchronous steps of its state ([`target`]).

pub mod activities;
pub mod collect;
pub mod discovery;
pub mod driver;
pub mod fleet;
pub mod generation;
pub mod message_history;
pub mod seen;
pub mod state_file;
pub mod target;

pub use fleet::{Fleet, FleetOptions, ReloadError, Selection};
pub use target::{Scan, Tally, Target, TargetState, Walk};

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LoadedConfig;

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

impl CollectSettings {
    /// The lookback edge now, in unix seconds.
    pub fn edge(&self) -> i64 {
        unix_now() - self.lookback.as_secs() as i64
    }
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
