//! What every request shares: the exposition, the fleet and the server's options.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::collector::{Fleet, FleetError, FleetOptions};
use crate::config::{LoadedConfig, Shard};
use crate::metrics::{Exposition, HttpMetrics, Metrics};
use crate::server::conn::Limits;
use crate::web::WebConfig;

/// Version and revision, as `--version` prints them.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision baked in by build.rs, or `unknown`.
pub const REVISION: &str = env!("WHATSAPP_EXPORTER_REVISION");

/// How the server runs, besides the configuration file's contents.
#[derive(Clone)]
pub struct Options {
    /// Where metrics are served.
    pub telemetry_path: String,
    /// Subtracted from Prometheus' scrape timeout to get the scrape deadline.
    pub timeout_offset: Duration,
    /// The file `POST /-/reload` and SIGHUP read again; `None` (demo, tests) cannot reload.
    pub config_file: Option<PathBuf>,
    /// `--web.config.file`: TLS, basic auth, headers.
    pub web: Arc<WebConfig>,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_timeout: Duration,
    /// `--shard`: overrides the config file's `shard:`.
    pub shard: Option<Shard>,
    /// Connection timeouts and bound.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            telemetry_path: "/metrics".into(),
            timeout_offset: Duration::from_millis(500),
            config_file: None,
            web: WebConfig::none(),
            shutdown_timeout: Duration::from_secs(15),
            shard: None,
            limits: Limits::default(),
        }
    }
}

/// Everything a request needs; built once.
pub struct AppState {
    /// Every family, read-only after setup (shared with the threads that encode an answer).
    pub exposition: Arc<Exposition>,
    /// The targets and their collection.
    pub fleet: Arc<Fleet>,
    /// Server options.
    pub options: Options,
    /// The HTTP server's own series.
    pub http: HttpMetrics,
}

impl AppState {
    /// Builds the metrics and the fleet of a configuration.
    pub fn new(loaded: &LoadedConfig, options: Options) -> Result<Arc<Self>, FleetError> {
        let mut exposition = Exposition::default();
        let metrics = Metrics::register(&mut exposition, VERSION, REVISION);
        let http = metrics.http.clone();
        let fleet = Fleet::new(
            loaded,
            FleetOptions {
                config_file: options.config_file.clone(),
                shard: options.shard,
            },
            metrics,
        )?;
        Ok(Arc::new(AppState {
            exposition: Arc::new(exposition),
            fleet: Arc::new(fleet),
            options,
            http,
        }))
    }
}
