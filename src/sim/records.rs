//! What tests and the demo put into the simulator: records, listed phone
//! numbers, and faults to answer with.

use std::time::Duration;

/// A fault the simulator answers with instead of data, for one target id.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A GraphAPIError body with this HTTP status.
    GraphError {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: i64,
        /// `error.message`.
        message: String,
        /// `error.is_transient`.
        is_transient: bool,
    },
    /// Any status and body, sent as is.
    Raw {
        /// HTTP status.
        status: u16,
        /// Body.
        body: String,
    },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer the next requests with these (status, body) pairs in order,
    /// then normally again.
    Sequence(std::collections::VecDeque<(u16, String)>),
}

/// A delivery-status event to add to a message.
#[derive(Debug, Clone, Default)]
pub struct SimEvent {
    /// Event id; `None` leaves it out of the response.
    pub id: Option<String>,
    /// `delivery_status`; `None` leaves it out.
    pub delivery_status: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
    /// `webhook_update_state`; `None` leaves it out.
    pub webhook_update_state: Option<String>,
    /// `application.id`; `None` leaves `application` out.
    pub application_id: Option<String>,
    /// `webhook_uri`.
    pub webhook_uri: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl SimEvent {
    /// An event with a fresh id, delivered to app `9876543210987654`'s webhook.
    pub fn new(status: &str, timestamp: i64) -> Self {
        SimEvent {
            id: None,
            delivery_status: Some(status.to_string()),
            timestamp,
            webhook_update_state: Some("DELIVERED".into()),
            application_id: Some("9876543210987654".into()),
            webhook_uri: Some("https://example.com/webhook".into()),
            error_description: None,
        }
    }

    /// Sets `webhook_update_state`.
    pub fn webhook(mut self, state: &str) -> Self {
        self.webhook_update_state = Some(state.to_string());
        self
    }

    /// Sets `error_description`.
    pub fn error(mut self, desc: &str) -> Self {
        self.error_description = Some(desc.to_string());
        self
    }

    /// Sets `application.id`.
    pub fn app(mut self, id: &str) -> Self {
        self.application_id = Some(id.to_string());
        self
    }
}

/// A phone number as `GET /{WABA-ID}/phone_numbers` lists it.
#[derive(Debug, Clone, Default)]
pub struct SimPhoneNumber {
    /// `display_phone_number`.
    pub display_phone_number: Option<String>,
    /// `verified_name`.
    pub verified_name: Option<String>,
    /// `quality_rating`.
    pub quality_rating: Option<String>,
    /// `messaging_limit_tier` (deprecated).
    pub messaging_limit_tier: Option<String>,
    /// `whatsapp_business_manager_messaging_limit`, its successor (`TIER_2K`).
    pub whatsapp_business_manager_messaging_limit: Option<String>,
    /// `status`.
    pub status: Option<String>,
}

impl SimPhoneNumber {
    /// A connected number with GREEN quality in tier `TIER_1K` (the
    /// deprecated field only).
    pub fn new(display: &str, name: &str) -> Self {
        SimPhoneNumber {
            display_phone_number: Some(display.to_string()),
            verified_name: Some(name.to_string()),
            quality_rating: Some("GREEN".into()),
            messaging_limit_tier: Some("TIER_1K".into()),
            whatsapp_business_manager_messaging_limit: None,
            status: Some("CONNECTED".into()),
        }
    }
}

/// An entity of a phone number's `health_status`.
#[derive(Debug, Clone)]
pub struct SimEntity {
    /// `PHONE_NUMBER`, `WABA`, `BUSINESS`, `APP`, ...
    pub entity_type: String,
    /// Its id.
    pub id: String,
    /// `AVAILABLE`, `LIMITED`, `BLOCKED`; `None` leaves it out.
    pub can_send_message: Option<String>,
    /// `(error_code, error_description)` of each listed error.
    pub errors: Vec<(i64, String)>,
}

impl SimEntity {
    /// An entity in state `can_send_message`, without errors.
    pub fn new(entity_type: &str, id: &str, can_send_message: &str) -> Self {
        SimEntity {
            entity_type: entity_type.to_string(),
            id: id.to_string(),
            can_send_message: Some(can_send_message.to_string()),
            errors: Vec::new(),
        }
    }

    /// Adds an error.
    pub fn error(mut self, code: i64, description: &str) -> Self {
        self.errors.push((code, description.to_string()));
        self
    }
}

/// A message template of a WABA.
#[derive(Debug, Clone)]
pub struct SimTemplate {
    /// Template id; `None` leaves it out.
    pub id: Option<String>,
    /// `name`.
    pub name: String,
    /// `language`.
    pub language: String,
    /// `category`.
    pub category: String,
    /// `status`.
    pub status: String,
    /// `quality_score.score`; `None` leaves `quality_score` out.
    pub quality: Option<String>,
}

impl SimTemplate {
    /// An `en_US` UTILITY template with this status and quality score.
    pub fn new(id: &str, name: &str, status: &str, quality: Option<&str>) -> Self {
        SimTemplate {
            id: Some(id.to_string()),
            name: name.to_string(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            status: status.to_string(),
            quality: quality.map(String::from),
        }
    }
}

/// An activity record to add to a WABA.
#[derive(Debug, Clone, Default)]
pub struct SimActivity {
    /// Record id; `None` leaves it out.
    pub id: Option<String>,
    /// `event_type`.
    pub event_type: Option<String>,
    /// `category`.
    pub category: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
    /// `actor_id`.
    pub actor_id: Option<String>,
    /// `actor_business_id`.
    pub actor_business_id: Option<String>,
}

impl SimActivity {
    /// A record of this category and type.
    pub fn new(category: &str, event_type: &str, timestamp: i64) -> Self {
        SimActivity {
            id: None,
            event_type: Some(event_type.to_string()),
            category: Some(category.to_string()),
            timestamp,
            actor_id: Some("1111222233334444".into()),
            actor_business_id: Some("5678901234567890".into()),
        }
    }
}

/// A record as stored: its place in the list (newer is higher).
#[derive(Debug, Clone)]
pub(super) struct Stored<T> {
    pub(super) seq: u64,
    pub(super) item: T,
}

/// A message and its events.
#[derive(Debug, Clone)]
pub(super) struct SimMessage {
    pub(super) id: String,
    pub(super) message_id: String,
    pub(super) events: Vec<SimEvent>,
}
