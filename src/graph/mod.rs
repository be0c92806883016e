//! The Graph API side: one HTTP client, the response types, and pagination.

pub mod budget;
pub mod client;
pub mod model;
pub mod paging;

pub use client::{GraphClient, PageRequest};
