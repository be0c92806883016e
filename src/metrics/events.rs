//! The events group: what the collectors counted, each event once.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::exposition::Exposition;
use crate::metrics::labels::{
    ActivityLabels, DeliveryErrorLabels, OfTarget, PhoneLabels, StatusLabels, TargetLabels,
    WebhookLabels,
};
use crate::metrics::shared::REUSE;
use crate::metrics::tracked::Tracked;

/// Buckets of `whatsapp_message_status_latency_seconds`: a second to a day.
pub const LATENCY_BUCKETS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
    86400.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// `whatsapp_activity_events_total`, `whatsapp_message_status_events_total`,
/// `whatsapp_webhook_update*_total`, `whatsapp_message_delivery_errors_total`,
/// and what is derived from the remembered events: `whatsapp_webhook_events`,
/// `whatsapp_message_status_latency_seconds`, `whatsapp_messages_undelivered`.
#[derive(Clone, Debug)]
pub struct EventMetrics {
    /// `whatsapp_activity_events_total`.
    pub activity_events: Tracked<ActivityLabels, Counter>,
    /// `whatsapp_message_status_events_total`.
    pub status_events: Tracked<StatusLabels, Counter>,
    /// `whatsapp_webhook_updates_total`.
    pub webhook_updates: Tracked<WebhookLabels, Counter>,
    /// `whatsapp_webhook_update_failures_total`.
    pub webhook_failures: Tracked<WebhookLabels, Counter>,
    /// `whatsapp_message_delivery_errors_total`.
    pub delivery_errors: Tracked<DeliveryErrorLabels, Counter>,
    /// `whatsapp_webhook_events`.
    pub webhook_events: Tracked<WebhookLabels, Gauge>,
    /// `whatsapp_message_status_latency_seconds`.
    pub status_latency: Tracked<StatusLabels, Histogram>,
    /// `whatsapp_messages_undelivered`.
    pub undelivered: Tracked<PhoneLabels, Gauge>,
}

impl EventMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = EventMetrics {
            activity_events: Tracked::default(),
            status_events: Tracked::default(),
            webhook_updates: Tracked::default(),
            webhook_failures: Tracked::default(),
            delivery_errors: Tracked::default(),
            webhook_events: Tracked::default(),
            status_latency: Tracked::with_constructor(latency_histogram),
            undelivered: Tracked::default(),
        };
        exp.register(
            "whatsapp_activity_events",
            format!("Distinct WABA activity records seen, each counted once (by id, else by a hash of its fields). {REUSE}"),
            m.activity_events.clone(),
        );
        exp.register(
            "whatsapp_message_status_events",
            format!("Distinct message delivery-status events seen, by delivery_status, each counted once. {REUSE}"),
            m.status_events.clone(),
        );
        exp.register(
            "whatsapp_webhook_updates",
            format!("Webhook states of delivery-status events, by state: 1 for a new event's state and 1 each time a known event is seen in another state than last time. {REUSE}"),
            m.webhook_updates.clone(),
        );
        exp.register(
            "whatsapp_webhook_update_failures",
            format!("The webhook updates (whatsapp_webhook_updates_total) into a failure state (collect.webhook_failure_states). {REUSE}"),
            m.webhook_failures.clone(),
        );
        exp.register(
            "whatsapp_message_delivery_errors",
            format!("Delivery-status events showing an error_description they did not have when last seen (a new event with one counts too), by normalised description (capped per phone number, the rest as other). {REUSE}"),
            m.delivery_errors.clone(),
        );
        exp.register(
            "whatsapp_webhook_events",
            "Delivery-status events within collect.lookback, by the webhook state they were last seen in",
            m.webhook_events.clone(),
        );
        exp.register(
            "whatsapp_message_status_latency_seconds",
            "Time from a message's earliest SENT event to each of its later events (DELIVERED, READ, FAILED, ...), observed once per event counted",
            m.status_latency.clone(),
        );
        exp.register(
            "whatsapp_messages_undelivered",
            "Messages within collect.lookback that were SENT more than collect.undelivered_after ago and have no DELIVERED, READ, FAILED or DELETED event",
            m.undelivered.clone(),
        );
        m
    }

    /// Removes every series of target `l`.
    pub fn forget_target(&self, l: &TargetLabels) {
        self.activity_events.retain(|k| !k.of_target(l));
        self.status_events.retain(|k| !k.of_target(l));
        self.webhook_updates.retain(|k| !k.of_target(l));
        self.webhook_failures.retain(|k| !k.of_target(l));
        self.delivery_errors.retain(|k| !k.of_target(l));
        self.webhook_events.retain(|k| !k.of_target(l));
        self.status_latency.retain(|k| !k.of_target(l));
        self.undelivered.retain(|k| !k.of_target(l));
    }

    /// Creates the series every phone number has from the start.
    pub fn init_phone(&self, phone: &str) {
        self.undelivered.get_or_create(&PhoneLabels {
            phone_number_id: phone.to_string(),
        });
    }
}
