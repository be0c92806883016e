//! The Graph API edges the exporter reads: each one's URL path segment and
//! its `endpoint` label value, named in one place.

/// One edge of a Graph node: `GET /{version}/{id}/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// `GET /{WABA-ID}/activities`.
    Activities,
    /// `GET /{Phone-Number-ID}/message_history`.
    MessageHistory,
    /// `GET /{WABA-ID}/phone_numbers`: discovery and phone number health.
    PhoneNumbers,
}

impl Edge {
    /// The URL path segment after the node id.
    pub const fn path(self) -> &'static str {
        match self {
            Edge::Activities => "activities",
            Edge::MessageHistory => "message_history",
            Edge::PhoneNumbers => "phone_numbers",
        }
    }

    /// The `endpoint` label value of the request metrics: the path segment,
    /// for every edge read so far (a read of a node itself will need its own).
    pub const fn label(self) -> &'static str {
        self.path()
    }
}
