//! A Graph API simulator, used by the tests and by `--demo`.
//!
//! It serves `GET /{version}/{WABA-ID}/activities` and
//! `GET /{version}/{Phone-Number-ID}/message_history` over loopback HTTP the
//! way the reference pages describe them: bearer-token check (401, code 190),
//! `fields` selection including the nested `events{...}` form, `limit`
//! validation (400, code 100), opaque cursors (stable when new records are
//! added at the top), newest first, and the `message_id` filter. It also
//! serves `GET /{WABA-ID}/phone_numbers`, `GET /{WABA-ID}/message_templates`
//! and `GET /{Phone-Number-ID}?fields=health_status`. Tests add records, set
//! health and templates, and inject faults through [`Simulator`]'s methods.
//!
//! It builds its JSON on its own with `serde_json::json!` and never uses the
//! exporter's model types, so a misspelt field fails a test instead of
//! passing on both sides.

mod delay;
pub mod demo;
mod http;
mod records;
mod render;
mod store;

pub use records::{Fault, SimActivity, SimEntity, SimEvent, SimPhoneNumber, SimTemplate};
pub use store::Simulator;
