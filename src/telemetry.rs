//! Logging: logfmt or JSON on stderr, level from `--log.level`.
//!
//! The access token never reaches a log line: it only exists inside
//! [`crate::secret::AccessToken`], and URLs are logged without query strings.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `--log.format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `key=value` lines.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `level` is `debug`, `info`, `warn` or `error`.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn"
    ))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}
