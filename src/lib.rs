//! whatsapp-exporter: a Prometheus exporter for the WhatsApp Business Platform.
//!
//! Each scrape of `/metrics` collects the recent pages of
//! `GET /{WABA-ID}/activities` and `GET /{Phone-Number-ID}/message_history`
//! for every configured target, counts each event exactly once, and serves
//! the counters in the OpenMetrics or classic Prometheus text format.
//!
//! # Layout
//! - [`cli`]: the flags, and what the binary does with them (`main.rs` only calls it).
//! - [`config`]: loading and `check` (`mod`); the file's sections and defaults (`file`),
//!   validation reporting every problem with its line (`validate`, `problem`), targets with
//!   their tokens, collectors and shards (`target`).
//! - [`secret`]: the access token newtype that never prints.
//! - [`Allocator`]: mimalloc, which the binary, the scale program and hot_paths declare.
//! - [`fnv`]: the stable hash that keys remembered events and assigns shards.
//! - [`error`]: `GraphError`: its `error_code` label, rate-limit scope, retryability, hint.
//! - [`graph`]: the Graph edges and node reads (`edge`), the one HTTP client with retries
//!   for pages and nodes (`client`), response types, read with their strings borrowed from the body, a bad record or entity skipped alone (`model`), the direct reader of
//!   message_history pages, `serde_json` deciding whatever it is unsure of (`history_json`), the pull pager
//!   handing each page to a visitor before its body is dropped (`paging`), usage headers (`usage`), the API
//!   budget: throttling, hourly cap (`budget`).
//! - [`collector`]: the fleet of targets, one generation at a time (`fleet`, `generation`);
//!   one target's collection (`collect`) through one driver (`driver`: one walk to seen data,
//!   or a head and the next pages of a rolling sweep of the window, `sweep`) over the target's
//!   state steps (`target`); the two collectors (`activities`, `message_history`: new events
//!   and changes of their webhook state after first sight), what a target remembers of each
//!   event and message (`seen`), the state store (`store`: redb, one writer, what each collection
//!   changed) and the JSON file of earlier releases it imports (`state_file`), phone number
//!   listing (`discovery`), account health on its own schedule (`health`: each number's
//!   health status, each account's templates), `collect:` settings (`settings`), many
//!   targets at once, a task each (`fan_out`).
//! - [`metrics`]: the metric groups (`api`, `collection`, `events`, `phones`, `health`:
//!   entities' sending state and templates, `process`, `http`: the server's connections and refusals),
//!   their label sets, values and caps (`labels`), families that list their series (`tracked`),
//!   what the groups share (`shared`), the answer of one scrape built from them, one part per
//!   family (`exposition`), both text formats (`encode`).
//! - [`server`]: HTTP only: what requests share (`state`), `router(state)` and its handlers
//!   (`routes`, which makes an answer's parts on every CPU); `run(listener, state, shutdown)`: accept loop, TLS, bounded graceful
//!   shutdown, binding, signals (`listen`); every connection watched against the
//!   read-header and idle timeouts and the connection bound (`conn`).
//! - [`web`]: `--web.config.file` in exporter-toolkit's format: re-read on change, the
//!   guard middleware (`mod`); the file and its checks (`file`); TLS settings, Go's
//!   suite and curve names (`tls`); client certificates as Go checks them (`client_auth`);
//!   bounded, remembered password checks and the rate limit (`auth`).
//! - [`telemetry`]: logs, OTLP traces and W3C trace context (`mod`); the `OTEL_*` settings
//!   and the tracer provider (`otlp`).
//! - [`sim`]: the Graph API simulator used by the tests and `--demo`: its data and handle
//!   (`store`), what tests put in (`records`), serving and routing (`http`), JSON and pages
//!   (`render`), the latency asked for, not rounded up to Tokio's millisecond ticks (`delay`),
//!   the demo (`demo`).
//!
//! One scrape: `server` -> `collector::Fleet` (discovery, then each target through the
//! driver: `graph` pages -> scan -> dedupe and state changes -> counters -> gauges; then
//! the account health checks that are due) ->
//! `metrics::Exposition` -> `server`.
//! Data flows one way: Graph API -> pages -> events -> dedupe -> counters -> exposition.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

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

/// The allocator the exporter's programs declare (`#[global_allocator]` in
/// the binary, the scale program and the hot_paths benchmark, so that they
/// measure what the binary runs): mimalloc. glibc's malloc consolidates its
/// free lists on every free of a chunk of 64 KiB or more, as a page's body
/// is; see BENCHMARKS.md. Built without transparent huge pages, which
/// cost a quarter more RSS. A library cannot declare it for them: a program
/// with an allocator of its own (examples/seen_memory.rs counts bytes) could
/// not link.
pub use mimalloc::MiMalloc as Allocator;
