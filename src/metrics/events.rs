//! The events group: what the collectors counted, each event once.

use prometheus_client::metrics::counter::Counter;

use crate::metrics::exposition::Exposition;
use crate::metrics::labels::{
    ActivityLabels, DeliveryErrorLabels, OfTarget, StatusLabels, TargetLabels, WebhookLabels,
};
use crate::metrics::shared::REUSE;
use crate::metrics::tracked::Tracked;

/// `whatsapp_activity_events_total`, `whatsapp_message_status_events_total`,
/// `whatsapp_webhook_update*_total`, `whatsapp_message_delivery_errors_total`.
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
            format!("Distinct delivery-status events by the state of Meta's webhook delivery to the application. {REUSE}"),
            m.webhook_updates.clone(),
        );
        exp.register(
            "whatsapp_webhook_update_failures",
            format!("Distinct delivery-status events whose webhook_update_state is a failure state (collect.webhook_failure_states). {REUSE}"),
            m.webhook_failures.clone(),
        );
        exp.register(
            "whatsapp_message_delivery_errors",
            format!("Distinct delivery-status events carrying an error_description, by normalised description (capped per phone number, the rest as other). {REUSE}"),
            m.delivery_errors.clone(),
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
    }
}
