//! The exporter's series, in groups by concern, each registering its own
//! families and forgetting a removed target's series itself (the pattern of
//! kube-rs controller-rs): [`api`] (the Graph client's), [`collection`]
//! (how each target's collection went), [`events`] (what was counted),
//! [`phones`] (phone number listing), [`health`] (account health:
//! entities' health status, templates), [`process`] (build, shard, config),
//! [`http`] (the HTTP server's connections and refusals).
//! [`exposition`] answers a scrape from them; [`encode`] writes both text
//! formats.
//!
//! Names follow the Prometheus naming page: counters are registered without
//! `_total` (prometheus-client appends it), times are `_timestamp_seconds`.

pub mod api;
pub mod collection;
pub mod encode;
pub mod events;
pub mod exposition;
pub mod health;
pub mod http;
pub mod labels;
pub mod phones;
pub mod process;
pub mod shared;
pub mod tracked;

pub use api::ApiMetrics;
pub use collection::CollectionMetrics;
pub use events::EventMetrics;
pub use exposition::{Exposition, Scope};
pub use health::HealthMetrics;
pub use http::HttpMetrics;
pub use labels::TargetLabels;
pub use phones::PhoneMetrics;
pub use process::ProcessMetrics;
pub use shared::{FloatGauge, unix_now};
pub use tracked::Tracked;

/// Every group; each part goes only where it is written.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The Graph client's.
    pub api: ApiMetrics,
    /// Per-target collection outcome.
    pub collection: CollectionMetrics,
    /// The counted events.
    pub events: EventMetrics,
    /// Phone number listing.
    pub phones: PhoneMetrics,
    /// Account health: entities' health status, templates.
    pub health: HealthMetrics,
    /// Build, shard, configuration.
    pub process: ProcessMetrics,
    /// The HTTP server.
    pub http: HttpMetrics,
}

impl Metrics {
    /// Creates and registers every group.
    pub fn register(exp: &mut Exposition, version: &'static str, revision: &'static str) -> Self {
        Metrics {
            events: EventMetrics::register(exp),
            collection: CollectionMetrics::register(exp),
            api: ApiMetrics::register(exp),
            phones: PhoneMetrics::register(exp),
            health: HealthMetrics::register(exp),
            process: ProcessMetrics::register(exp, version, revision),
            http: HttpMetrics::register(exp),
        }
    }

    /// Creates the series of a target new to this process.
    pub fn init_target(&self, l: &TargetLabels) {
        self.collection.init_target(l);
        self.api.init_target(&l.target);
        if l.collector == labels::MESSAGE_HISTORY {
            self.events.init_phone(&l.target);
        }
    }

    /// Removes every series of target `l`, dropped by a reload or
    /// discovery. `id_in_use`: another target has the same id, so the series
    /// labelled by id alone stay.
    pub fn forget_target(&self, l: &TargetLabels, id_in_use: bool) {
        self.collection.forget_target(l);
        self.events.forget_target(l);
        if !id_in_use {
            self.api.forget_target(&l.target);
        }
    }
}
