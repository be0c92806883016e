//! Command line: flags -> config -> logging and tracing -> server -> flush the last spans.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use whatsapp_exporter::config::{Config, LoadedConfig, Shard, TOKEN_ENV};
use whatsapp_exporter::server::{self, AppState, Options, REVISION, VERSION};
use whatsapp_exporter::sim;
use whatsapp_exporter::telemetry::{self, LogFormat, ProcessEnv};
use whatsapp_exporter::web::WebConfig;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("WHATSAPP_EXPORTER_REVISION"),
    ")"
);

/// Prometheus exporter for the WhatsApp Business Platform (Meta Graph API).
#[derive(Debug, Parser)]
#[command(name = "whatsapp-exporter", version = LONG_VERSION)]
struct Flags {
    /// Path to the YAML configuration file.
    #[arg(long = "config.file", value_name = "PATH")]
    config_file: Option<PathBuf>,
    /// Validate the configuration, print every problem, and exit (0 if valid).
    #[arg(long = "config.check")]
    config_check: bool,
    /// Address to listen on (":9917" means every interface).
    #[arg(
        long = "web.listen-address",
        default_value = ":9917",
        value_name = "ADDR"
    )]
    listen_address: String,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    telemetry_path: String,
    /// Seconds subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds to get the scrape deadline.
    #[arg(
        long = "web.timeout-offset",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    timeout_offset: f64,
    /// Web configuration (exporter-toolkit format): TLS, basic auth, response headers.
    /// Checked for changes on every connection and request.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish.
    #[arg(long = "web.shutdown-timeout", default_value = "15s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    shutdown_timeout: std::time::Duration,
    /// Collect only shard INDEX of COUNT of the targets (like 0/2); overrides `shard:` in the config.
    #[arg(long = "shard", value_name = "INDEX/COUNT", value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// Run against an embedded Graph API simulator with live traffic (no config, no token).
    #[arg(long = "demo", conflicts_with = "config_file")]
    demo: bool,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    log_format: LogFormat,
    /// Export traces over OTLP to this base URL (like OTEL_EXPORTER_OTLP_ENDPOINT; the
    /// OTEL_* variables set the rest). Off when neither this nor those variables ask for it.
    #[arg(long = "tracing.otlp-endpoint", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.config_check {
        return check(&flags);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("whatsapp-exporter: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The gRPC trace exporter starts its connection task in the runtime.
    let _entered = runtime.enter();
    let telemetry = match telemetry::resolve_otlp(flags.otlp_endpoint.as_deref(), &ProcessEnv)
        .and_then(|otlp| telemetry::init(&flags.log_level, flags.log_format, otlp.as_ref()))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("whatsapp-exporter: cannot set up logging and tracing: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("whatsapp-exporter: {e:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

fn check(flags: &Flags) -> ExitCode {
    let Some(path) = &flags.config_file else {
        eprintln!("--config.check needs --config.file=PATH");
        return ExitCode::from(2);
    };
    let mut ok = match Config::load(path) {
        Ok(c) => {
            println!(
                "{}: configuration is valid ({} targets)",
                path.display(),
                c.targets.len()
            );
            true
        }
        Err(e) => {
            eprint!("{e}");
            false
        }
    };
    // The web configuration too, when given.
    if let Some(web) = &flags.web_config_file {
        match whatsapp_exporter::web::load(web) {
            Ok(_) => println!("{}: web configuration is valid", web.display()),
            Err(e) => {
                eprintln!("invalid --web.config.file: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let loaded: LoadedConfig = if flags.demo {
        let (_sim, url) = sim::demo::start()
            .await
            .context("cannot start the demo simulator")?;
        tracing::info!(simulator = %url, "demo mode: collecting from the embedded Graph API simulator");
        Config::from_yaml(&sim::demo::config_yaml(&url), "demo config", |k| {
            (k == TOKEN_ENV).then(|| sim::demo::DEMO_TOKEN.to_string())
        })?
    } else {
        let path = flags
            .config_file
            .as_ref()
            .context("--config.file=PATH is required (or --demo)")?;
        Config::load(path)?
    };
    let offset = std::time::Duration::try_from_secs_f64(flags.timeout_offset)
        .context("--web.timeout-offset must be a non-negative number of seconds")?;
    let web = match &flags.web_config_file {
        Some(p) => WebConfig::from_file(p)
            .map_err(|e| anyhow::anyhow!("invalid --web.config.file: {e}"))?,
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
        },
    )?;
    reload_on_sighup(state.clone());
    let listener = bind(&flags.listen_address).await?;
    tracing::info!(
        version = VERSION,
        revision = REVISION,
        address = %listener.local_addr()?,
        tls,
        targets = loaded.targets.len(),
        "listening"
    );
    server::run(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds a Go-style address: ":9917" listens on every interface.
async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let candidates: Vec<String> = match addr.strip_prefix(':') {
        Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
        None => vec![addr.to_string()],
    };
    let mut last = None;
    for c in &candidates {
        match TcpListener::bind(c).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen on {addr}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// SIGHUP reads the configuration file again, as `POST /-/reload` does.
fn reload_on_sighup(state: std::sync::Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            // The outcome is logged and in whatsapp_config_last_reload_successful.
            let _ = state.reload().await;
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
