//! The Graph API side: the edges read ([`edge`]), one HTTP client with
//! retries ([`client`]), the response types ([`model`]) and the direct
//! reader of message_history pages ([`history_json`]), cursor pagination
//! pulled a page at a time ([`paging`]), what Meta says we used ([`usage`]),
//! and the API budget ([`budget`]).
//! It knows nothing of collectors, targets or counted events.

pub mod budget;
pub mod client;
pub mod edge;
pub mod history_json;
pub mod model;
pub mod paging;
pub mod usage;

pub use client::{EdgeRequest, GraphClient};
pub use edge::Edge;
pub use paging::{End, PageSource, Pager};
