//! The process group: the exporter's own build, shard and configuration loads.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::{Exposition, Unscoped};
use crate::metrics::labels::{BuildLabels, ShardLabels};
use crate::metrics::shared::{FloatGauge, unix_now};
use crate::metrics::tracked::Tracked;

/// `whatsapp_exporter_build_info`, `whatsapp_shard_info`, `whatsapp_config_*`.
#[derive(Clone, Debug)]
pub struct ProcessMetrics {
    shard_info: Tracked<ShardLabels, Gauge>,
    reload_successful: Gauge,
    reload_timestamp: FloatGauge,
}

impl ProcessMetrics {
    /// Creates the group's families and registers them; sets the build info.
    pub fn register(exp: &mut Exposition, version: &'static str, revision: &'static str) -> Self {
        let m = ProcessMetrics {
            shard_info: Tracked::default(),
            reload_successful: Gauge::default(),
            reload_timestamp: FloatGauge::default(),
        };
        exp.register(
            "whatsapp_shard_info",
            "1 when this process collects one shard of the targets (--shard or shard: in the config): the targets whose stable hash modulo count is index",
            Unscoped(m.shard_info.clone()),
        );
        exp.register(
            "whatsapp_config_last_reload_successful",
            "1 if the last load of the configuration file (start-up, SIGHUP or POST /-/reload) succeeded, else 0",
            Unscoped(m.reload_successful.clone()),
        );
        exp.register(
            "whatsapp_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the configuration file",
            Unscoped(m.reload_timestamp.clone()),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels { version, revision })
            .set(1);
        exp.register(
            "whatsapp_exporter_build_info",
            "Always 1; labels give the exporter's version and git revision",
            Unscoped(build),
        );
        m
    }

    /// A configuration was loaded and is in force.
    pub fn loaded(&self) {
        self.reload_successful.set(1);
        self.reload_timestamp.set(unix_now());
    }

    /// A reload was refused; the previous configuration stays.
    pub fn reload_failed(&self) {
        self.reload_successful.set(0);
    }

    /// Sets `whatsapp_shard_info` to this process's shard (none: no series).
    pub fn set_shard(&self, shard: Option<(u32, u32)>) {
        let l = shard.map(|(index, count)| ShardLabels { index, count });
        self.shard_info.retain(|k| Some(k) == l.as_ref());
        if let Some(l) = l {
            self.shard_info.get_or_create(&l).set(1);
        }
    }
}
