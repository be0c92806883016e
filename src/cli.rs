//! The command line: the flags, and what the binary does with them (check
//! the configuration, or load it, build the server and serve until a signal).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, Shard};
use crate::server::{self, AppState, Limits, Options, REVISION, VERSION};
use crate::telemetry::LogFormat;
use crate::web::WebConfig;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("WHATSAPP_EXPORTER_REVISION"),
    ")"
);

/// Prometheus exporter for the WhatsApp Business Platform (Meta Graph API).
#[derive(Debug, Parser)]
#[command(name = "whatsapp-exporter", version = LONG_VERSION)]
pub struct Flags {
    /// Path to the YAML configuration file.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Validate the configuration, print every problem, and exit (0 if valid).
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Address to listen on (":9917" means every interface).
    #[arg(
        long = "web.listen-address",
        default_value = ":9917",
        value_name = "ADDR"
    )]
    pub listen_address: String,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,
    /// Seconds subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds to get the scrape deadline.
    #[arg(
        long = "web.timeout-offset",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub timeout_offset: f64,
    /// Web configuration (exporter-toolkit format): TLS, basic auth, response headers.
    /// Checked for changes on every connection and request.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish.
    #[arg(long = "web.shutdown-timeout", default_value = "15s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Duration,
    /// Close a connection that has not sent a complete request head this long
    /// after it opened (or after the first byte of a later request).
    #[arg(long = "web.read-header-timeout", default_value = "30s", value_parser = positive_duration, value_name = "DURATION")]
    pub read_header_timeout: Duration,
    /// Close a keep-alive connection idle this long between requests (or whose
    /// client takes this long to read a response).
    #[arg(long = "web.idle-timeout", default_value = "2m", value_parser = positive_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Connections served at once; beyond it, the one waiting longest without a
    /// request is closed. Lowered to fit the open-file limit.
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections: u32,
    /// Collect only shard INDEX of COUNT of the targets (like 0/2); overrides `shard:` in the config.
    #[arg(long = "shard", value_name = "INDEX/COUNT", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Run against an embedded Graph API simulator with live traffic (no config, no token).
    #[arg(long = "demo", conflicts_with = "config_file")]
    pub demo: bool,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
    /// Export traces over OTLP to this base URL (like OTEL_EXPORTER_OTLP_ENDPOINT; the
    /// OTEL_* variables set the rest). Off when neither this nor those variables ask for it.
    #[arg(long = "tracing.otlp-endpoint", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Loads the configuration (or starts the demo), builds the server and
/// serves until SIGTERM or Ctrl-C.
pub async fn serve(flags: Flags) -> anyhow::Result<()> {
    // The demo's simulator lives as long as the server.
    let (_demo, loaded) = if flags.demo {
        let (sim, loaded) = crate::sim::demo::start_configured()
            .await
            .context("cannot start the demo simulator")?;
        (Some(sim), loaded)
    } else {
        let path = flags
            .config_file
            .as_ref()
            .context("--config.file=PATH is required (or --demo)")?;
        (None, Config::load(path)?)
    };
    let offset = Duration::try_from_secs_f64(flags.timeout_offset)
        .context("--web.timeout-offset must be a non-negative number of seconds")?;
    let web = match &flags.web_config_file {
        Some(p) => WebConfig::from_file(p).context("invalid --web.config.file")?,
        None => WebConfig::none(),
    };
    let tls = web.tls;
    let state = AppState::new(
        &loaded,
        Options {
            telemetry_path: flags.telemetry_path.clone(),
            timeout_offset: offset,
            config_file: flags.config_file.clone(),
            web,
            shutdown_timeout: flags.shutdown_timeout,
            shard: flags.shard,
            limits: Limits {
                read_header_timeout: flags.read_header_timeout,
                idle_timeout: flags.idle_timeout,
                max_connections: flags.max_connections as usize,
            },
        },
    )?;
    server::reload_on_sighup(state.clone());
    let listener = server::bind(&flags.listen_address).await?;
    tracing::info!(
        version = VERSION,
        revision = REVISION,
        address = %listener.local_addr()?,
        tls,
        targets = loaded.targets.len(),
        "listening"
    );
    server::run(listener, state, server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// A duration above zero (`30s`, `2m`).
fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be above zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}
