//! The HTTP side, and only that: the router and its handlers (`/metrics`,
//! `/probe`, a landing page, health, readiness, reload), and the listen loop
//! (`listen`). `run` takes its listener and shutdown future so tests serve
//! the real router on `127.0.0.1:0`. What is collected and how belongs to
//! [`crate::collector::Fleet`]; what a response shows, to
//! [`crate::metrics::Exposition`].

mod conn;
mod listen;
mod routes;
mod state;

pub use conn::Limits;
pub use listen::{bind, reload_on_sighup, run, shutdown_signal};
pub use routes::router;
pub use state::{AppState, Options, REVISION, VERSION};
