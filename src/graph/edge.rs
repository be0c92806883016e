//! The Graph API edges (and node reads) the exporter makes: each one's URL
//! path segment and its `endpoint` label value, named in one place.

/// One edge of a Graph node: `GET /{version}/{id}/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// `GET /{WABA-ID}/activities`.
    Activities,
    /// `GET /{Phone-Number-ID}/message_history`.
    MessageHistory,
    /// `GET /{WABA-ID}/phone_numbers`: discovery and phone number health.
    PhoneNumbers,
    /// `GET /{WABA-ID}/message_templates`: templates, their status and quality.
    MessageTemplates,
    /// `GET /{Phone-Number-ID}?fields=health_status`: a read of the node itself.
    HealthStatus,
}

impl Edge {
    /// The URL path segment after the node id; `None` for a read of the node itself.
    pub const fn path(self) -> Option<&'static str> {
        match self {
            Edge::Activities => Some("activities"),
            Edge::MessageHistory => Some("message_history"),
            Edge::PhoneNumbers => Some("phone_numbers"),
            Edge::MessageTemplates => Some("message_templates"),
            Edge::HealthStatus => None,
        }
    }

    /// The `endpoint` label value of the request metrics: the path segment
    /// of an edge, the field read of a node.
    pub const fn label(self) -> &'static str {
        match self {
            Edge::HealthStatus => "health_status",
            Edge::Activities => "activities",
            Edge::MessageHistory => "message_history",
            Edge::PhoneNumbers => "phone_numbers",
            Edge::MessageTemplates => "message_templates",
        }
    }
}
