//! The HTTP server group: connections open, and what the server cut short
//! to stay answerable (connections closed by a timeout or to make room,
//! requests refused by the password-check bound or the rate limit).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::{Exposition, Unscoped};
use crate::metrics::labels::ReasonLabels;

/// Why the server closed a connection itself.
pub const CLOSE_REASONS: [&str; 4] = ["header_timeout", "idle_timeout", "evicted", "refused"];
/// Why the server refused a request before it reached a handler.
pub const REFUSE_REASONS: [&str; 2] = ["auth_busy", "rate_limit"];

/// `whatsapp_http_*`.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    connections: Gauge,
    closed: Family<ReasonLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
}

impl HttpMetrics {
    /// Creates the group's families (every reason at 0) and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = HttpMetrics {
            connections: Gauge::default(),
            closed: Family::default(),
            refused: Family::default(),
        };
        for reason in CLOSE_REASONS {
            let _ = m.closed.get_or_create(&ReasonLabels { reason });
        }
        for reason in REFUSE_REASONS {
            let _ = m.refused.get_or_create(&ReasonLabels { reason });
        }
        exp.register(
            "whatsapp_http_connections",
            "Connections to the exporter's HTTP server open now (at most --web.max-connections)",
            Unscoped(m.connections.clone()),
        );
        exp.register(
            "whatsapp_http_connections_closed",
            "Connections the server closed itself, by reason: header_timeout (no complete request head within --web.read-header-timeout), idle_timeout (nothing asked within --web.idle-timeout), evicted (closed to make room for a new one at --web.max-connections), refused (at the limit with every connection busy)",
            Unscoped(m.closed.clone()),
        );
        exp.register(
            "whatsapp_http_requests_refused",
            "Requests answered 429 before any handler ran, by reason: auth_busy (too many password checks waiting), rate_limit (the web config's rate_limit)",
            Unscoped(m.refused.clone()),
        );
        m
    }

    /// A connection was accepted (`+1`) or ended (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The server closed a connection, for `reason` (one of [`CLOSE_REASONS`]).
    pub fn closed(&self, reason: &'static str) {
        self.closed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A request was refused, for `reason` (one of [`REFUSE_REASONS`]).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}
