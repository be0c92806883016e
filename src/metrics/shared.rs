//! What the metric groups share: the float gauge, the note on reused
//! collections in help texts, the clock of `_timestamp_seconds` gauges.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;

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
