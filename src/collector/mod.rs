//! Collection: the fleet of targets this process collects, and for each,
//! fetch the recent pages, count what is new exactly once, and record how
//! the collection went.
//!
//! [`Fleet`] owns one generation of targets at a time (collectors,
//! discovery, shard, the configured set), swapped whole by a reload or a
//! discovery change. A collection of one target ([`collect`]) checks the
//! reuse window and the budget, then runs the one [`driver`] with the
//! target's collector ([`activities`] or [`message_history`]) over the
//! synchronous steps of its state ([`target`]); message_history's pages are
//! read by a head and a rolling [`sweep`] of its window. Account [`health`]
//! (numbers' health status, accounts' templates) is read on its own slower
//! schedule after the collections of a whole scrape. Targets and checks are
//! collected [`fan_out`]: a task each, a bounded number at a time.

pub mod activities;
pub mod collect;
pub mod discovery;
pub mod driver;
pub mod fan_out;
pub mod fleet;
pub mod generation;
pub mod health;
pub mod message_history;
pub mod seen;
pub mod settings;
pub mod state_file;
pub mod store;
pub mod sweep;
pub mod target;

pub use fleet::{Fleet, FleetError, FleetOptions, Selection};
pub use settings::CollectSettings;
pub use target::{Phase, Scan, Tally, Target, TargetState, Walk};
