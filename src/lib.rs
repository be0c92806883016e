//! whatsapp-exporter: a Prometheus exporter for the WhatsApp Business Platform.
//!
//! Each scrape of `/metrics` collects the recent pages of
//! `GET /{WABA-ID}/activities` and `GET /{Phone-Number-ID}/message_history`
//! for every configured target, counts each event exactly once, and serves
//! the counters in the OpenMetrics or classic Prometheus text format.
//!
//! # Layout
//! - [`config`]: the YAML file, defaults, validation reporting every problem, token files.
//! - [`secret`]: the access token newtype that never prints.
//! - [`error`]: `GraphError`, whose `kind()` is the `error_code` label.
//! - [`graph`]: the one HTTP client with retries (`client`), response types (`model`),
//!   cursor pagination (`paging`), the API budget: usage headers, throttling, hourly cap (`budget`).
//! - [`collector`]: per-target state, coalescing and budget checks (`mod`), the two collectors
//!   (`activities`, `message_history`), dedupe (`seen`), persistence (`state_file`), phone number
//!   listing for discovery and health (`discovery`).
//! - [`metrics`]: metric families and registration (`mod`), exposition in both formats (`encode`),
//!   families that can drop a removed target's series (`tracked`).
//! - [`server`]: `AppState` and reload, `router(state)`, the scrape deadline (`mod`);
//!   `run(listener, state, shutdown)`: accept loop, TLS, bounded graceful shutdown (`listen`).
//! - [`web`]: `--web.config.file`: TLS settings, basic auth, headers, re-read on change.
//! - [`telemetry`]: logs, OTLP traces and W3C trace context (`mod`); the `OTEL_*` settings
//!   and the tracer provider (`otlp`).
//! - [`sim`]: the Graph API simulator used by the tests and `--demo` (`demo`).
//!
//! Data flows one way: Graph API -> pages -> events -> dedupe -> counters -> exposition.

#![forbid(unsafe_code)]

pub mod cli;
pub mod collector;
pub mod config;
pub mod error;
pub mod fnv;
pub mod graph;
pub mod metrics;
pub mod secret;
pub mod server;
pub mod sim;
pub mod telemetry;
pub mod web;
