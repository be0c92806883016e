//! What the metric groups share: the float gauge, the note on reused
//! collections in help texts, the clock of `_timestamp_seconds` gauges.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use std::hash::Hash;

use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::tracked::Tracked;

/// A float gauge.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Appended to the help of series a reused collection serves again.
pub const REUSE: &str =
    "A scrape within collect.min_interval of the last collection of a target reuses its result";

/// Now, in Unix seconds with a fraction (for `_timestamp_seconds` gauges).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One subject's one-hot series (a number's rating, an entity's state, a
/// template's status): 1 for `current`, 0 for the other `known` values; a
/// value the API gave before and gives no more goes. `value_of` gives a
/// series' value when it is of this subject.
pub fn one_hot<L: Clone + Hash + Eq>(
    family: &Tracked<L, Gauge>,
    known: &[&str],
    current: &str,
    value_of: impl Fn(&L) -> Option<&str>,
    labels: impl Fn(String) -> L,
) {
    family.retain(|l| value_of(l).is_none_or(|v| known.contains(&v) || v == current));
    for v in known.iter().copied().chain([current]) {
        family
            .get_or_create(&labels(v.to_string()))
            .set(i64::from(v == current));
    }
}
