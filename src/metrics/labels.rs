//! The label sets of the exporter's series, and which target each belongs
//! to ([`OfTarget`]), so that one target's series can be shown (`/probe`)
//! or forgotten from the label sets themselves.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;

use crate::config::{CollectorKind, TargetSpec};

/// Longest label value taken from the API, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// `s` cut to at most `max` characters, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        // No more bytes than `max`, so no more characters.
        return s;
    }
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// A label value as the API gives it (trimmed, capped at
/// [`MAX_LABEL_CHARS`]); missing or empty becomes `unknown`.
pub fn label_value(v: Option<&str>) -> String {
    label_str(v).to_string()
}

/// [`label_value`] without the copy.
pub fn label_str(v: Option<&str>) -> &str {
    match v.map(str::trim) {
        Some(s) if !s.is_empty() => truncate_chars(s, MAX_LABEL_CHARS),
        _ => "unknown",
    }
}

/// The values one label has taken (for one target): at most `max` distinct
/// values, later ones shown as `other`, so a sloppy or hostile API cannot
/// grow /metrics without bound.
#[derive(Debug, Default, Clone)]
pub struct LabelCap {
    values: std::collections::HashSet<String>,
}

impl LabelCap {
    /// `v` itself if it is known or there is room for it, else `other`.
    pub fn admit(&mut self, v: &str, max: usize) -> String {
        if self.values.contains(v) {
            return v.to_string();
        }
        if self.values.len() < max {
            self.values.insert(v.to_string());
            return v.to_string();
        }
        "other".to_string()
    }
}

/// Label sets that can tell whether their series belongs to a target.
pub trait OfTarget {
    /// Whether this series is one of `target`'s. Most are nobody's.
    fn of_target(&self, _target: &TargetLabels) -> bool {
        false
    }
}

/// `collector` label value of the activities collector.
pub const ACTIVITIES: &str = CollectorKind::Activities.as_str();
/// `collector` label value of the message_history collector.
pub const MESSAGE_HISTORY: &str = CollectorKind::MessageHistory.as_str();
/// `collector` label value of a phone number's health checks (`whatsapp_up`).
pub const HEALTH: &str = "health";
/// `collector` label value of an account's template listings (`whatsapp_up`).
pub const TEMPLATES: &str = "templates";

/// `{collector, target}`: one target of one collector.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct TargetLabels {
    /// `activities` or `message_history`; `health` or `templates` for the
    /// account health checks.
    pub collector: &'static str,
    /// WABA id or phone number id.
    pub target: String,
}

impl From<&TargetSpec> for TargetLabels {
    fn from(spec: &TargetSpec) -> Self {
        TargetLabels {
            collector: spec.collector.as_str(),
            target: spec.id.clone(),
        }
    }
}

impl OfTarget for TargetLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        self == t
    }
}

/// A series labelled by the account id only belongs to the activities target.
fn waba(waba_id: &str, t: &TargetLabels) -> bool {
    t.collector == ACTIVITIES && t.target == waba_id
}

/// A series labelled by the phone number id only belongs to the message_history target.
fn phone(phone_number_id: &str, t: &TargetLabels) -> bool {
    t.collector == MESSAGE_HISTORY && t.target == phone_number_id
}

/// `{waba_id, category, event_type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityLabels {
    /// WABA id.
    pub waba_id: String,
    /// Activity category.
    pub category: String,
    /// Activity event type.
    pub event_type: String,
}

impl OfTarget for ActivityLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        waba(&self.waba_id, t)
    }
}

/// `{phone_number_id, delivery_status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Delivery status as the API gives it.
    pub delivery_status: String,
}

impl OfTarget for StatusLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id, application_id, webhook_update_state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// App whose webhook received (or not) the update.
    pub application_id: String,
    /// Webhook delivery state as the API gives it.
    pub webhook_update_state: String,
}

impl OfTarget for WebhookLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhoneLabels {
    /// Phone number id.
    pub phone_number_id: String,
}

impl OfTarget for PhoneLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id, error}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryErrorLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Normalised, capped error description, or `other`.
    pub error: String,
}

impl OfTarget for DeliveryErrorLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{collector, target, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvalidRecordLabels {
    /// `activities` or `message_history`; `health` or `templates` for the
    /// account health checks.
    pub collector: &'static str,
    /// WABA id or phone number id.
    pub target: String,
    /// Why the record was skipped.
    pub reason: &'static str,
}

impl OfTarget for InvalidRecordLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        self.collector == t.collector && self.target == t.target
    }
}

/// `{endpoint, status_code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The Graph edge (`activities`, `message_history`, `phone_numbers`).
    pub endpoint: &'static str,
    /// HTTP status code.
    pub status_code: u16,
}

/// `{endpoint, error_code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    /// The Graph edge.
    pub endpoint: &'static str,
    /// Graph `error.code`, `http_<status>`, `timeout`, `network`, `decode`, ...
    pub error_code: Cow<'static, str>,
}

/// `{endpoint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The Graph edge.
    pub endpoint: &'static str,
}

/// `{target}`: a WABA id or phone number id, whichever collector calls with it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetOnlyLabels {
    /// WABA id or phone number id.
    pub target: String,
}

impl OfTarget for TargetOnlyLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        self.target == t.target
    }
}

/// `{target, usage_type, metric}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    /// WABA id or phone number id whose call reported it.
    pub target: String,
    /// `app` (X-App-Usage) or the business-use-case type.
    pub usage_type: String,
    /// `call_count`, `total_cputime` or `total_time`.
    pub metric: &'static str,
}

impl OfTarget for UsageLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        self.target == t.target
    }
}

/// `{phone_number_id, display_phone_number, verified_name, waba_id}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhoneInfoLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// As the API shows it.
    pub display_phone_number: String,
    /// The business name shown to users.
    pub verified_name: String,
    /// The account it belongs to.
    pub waba_id: String,
}

impl OfTarget for PhoneInfoLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id, rating}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QualityLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN` or another value the API gives.
    pub rating: String,
}

impl OfTarget for QualityLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id, status}`: the number's `status` in the listing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NumberStatusLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// `CONNECTED`, `DISCONNECTED`, ... or another value the API gives.
    pub status: String,
}

impl OfTarget for NumberStatusLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{phone_number_id, tier}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Phone number id.
    pub phone_number_id: String,
    /// Messaging limit tier as the API gives it.
    pub tier: String,
}

impl OfTarget for LimitLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        phone(&self.phone_number_id, t)
    }
}

/// `{index, count}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// This process's shard, 0-based.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

/// `{version, revision}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Crate version.
    pub version: &'static str,
    /// Git revision or `unknown`.
    pub revision: &'static str,
}

/// `{result}`: `success` or `failure`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// `{trace_id}`: the exemplar of a request histogram bucket, linking it to its trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    /// W3C trace id, 32 hex digits.
    pub trace_id: String,
}

/// `{reason}`: why the server closed or refused a connection, or refused a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// One of a fixed set of words per family.
    pub reason: &'static str,
}

/// A health entity's series belong to the target of the same id: the
/// number's to its message_history target, the WABA's to its activities target.
fn entity(entity_type: &str, entity_id: &str, t: &TargetLabels) -> bool {
    match entity_type {
        "PHONE_NUMBER" => phone(entity_id, t),
        "WABA" => waba(entity_id, t),
        _ => false,
    }
}

/// `{entity_type, entity_id, state}`: an entity's `can_send_message`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EntityStateLabels {
    /// `PHONE_NUMBER`, `WABA`, `BUSINESS`, `APP`, ... as the API gives it.
    pub entity_type: String,
    /// The entity's id.
    pub entity_id: String,
    /// `AVAILABLE`, `LIMITED`, `BLOCKED` or another value the API gives.
    pub state: String,
}

impl OfTarget for EntityStateLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        entity(&self.entity_type, &self.entity_id, t)
    }
}

/// `{entity_type, entity_id, error_code}`: an error Meta lists for an entity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EntityErrorLabels {
    /// As in [`EntityStateLabels`].
    pub entity_type: String,
    /// The entity's id.
    pub entity_id: String,
    /// `error_code` (capped per entity, then `other`).
    pub error_code: String,
}

impl OfTarget for EntityErrorLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        entity(&self.entity_type, &self.entity_id, t)
    }
}

/// `{waba_id, template_id, name, language, category}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateInfoLabels {
    /// The account.
    pub waba_id: String,
    /// Template id.
    pub template_id: String,
    /// Template name.
    pub name: String,
    /// Language code.
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`, ...
    pub category: String,
}

impl OfTarget for TemplateInfoLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        waba(&self.waba_id, t)
    }
}

/// `{waba_id, template_id, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateStatusLabels {
    /// The account.
    pub waba_id: String,
    /// Template id.
    pub template_id: String,
    /// `APPROVED`, `PENDING`, ... or another value the API gives.
    pub status: String,
}

impl OfTarget for TemplateStatusLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        waba(&self.waba_id, t)
    }
}

/// `{waba_id, template_id, score}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateQualityLabels {
    /// The account.
    pub waba_id: String,
    /// Template id.
    pub template_id: String,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`, or `unknown` when Meta gives none.
    pub score: String,
}

impl OfTarget for TemplateQualityLabels {
    fn of_target(&self, t: &TargetLabels) -> bool {
        waba(&self.waba_id, t)
    }
}
