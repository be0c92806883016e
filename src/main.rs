//! The binary: flags -> config check, or logging and tracing -> serve -> flush the last spans.

use std::process::ExitCode;

use clap::Parser;

use whatsapp_exporter::cli::{self, Flags};
use whatsapp_exporter::{config, telemetry};

/// The binary's allocator (see `whatsapp_exporter::Allocator`).
#[global_allocator]
static ALLOCATOR: whatsapp_exporter::Allocator = whatsapp_exporter::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.config_check {
        let Some(path) = &flags.config_file else {
            eprintln!("--config.check needs --config.file=PATH");
            return ExitCode::from(2);
        };
        return match config::check(path, flags.web_config_file.as_deref()) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    // Inside the runtime: the gRPC trace exporter starts its connection task there.
    let otlp = telemetry::resolve_otlp(flags.otlp_endpoint.as_deref(), &telemetry::ProcessEnv);
    let telemetry = match otlp
        .and_then(|otlp| telemetry::init(&flags.log_level, flags.log_format, otlp.as_ref()))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("whatsapp-exporter: cannot set up logging and tracing: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli::serve(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("whatsapp-exporter: {e:#}");
            ExitCode::FAILURE
        }
    };
    // The flush blocks (at most 5 s); the exporter's connection still needs the runtime.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}
