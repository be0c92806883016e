//! The phone numbers group: what the listing of an account's numbers says
//! of each (display number, quality rating, status, messaging limit).

use std::collections::HashSet;

use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::Exposition;
use crate::metrics::shared::one_hot;

use crate::metrics::labels::{LimitLabels, NumberStatusLabels, PhoneInfoLabels, QualityLabels};
use crate::metrics::tracked::Tracked;

/// The quality ratings always exposed (0 or 1), whatever the API gives.
pub const RATINGS: [&str; 4] = ["GREEN", "YELLOW", "RED", "UNKNOWN"];
/// The number statuses always exposed (0 or 1), whatever the API gives.
pub const STATUSES: [&str; 6] = [
    "CONNECTED",
    "DISCONNECTED",
    "UNVERIFIED",
    "PENDING",
    "FLAGGED",
    "RESTRICTED",
];

/// `whatsapp_phone_number_*`.
#[derive(Clone, Debug)]
pub struct PhoneMetrics {
    info: Tracked<PhoneInfoLabels, Gauge>,
    quality: Tracked<QualityLabels, Gauge>,
    status: Tracked<NumberStatusLabels, Gauge>,
    limit: Tracked<LimitLabels, Gauge>,
}

/// One listed phone number, as its labels will show it.
#[derive(Debug, Clone)]
pub struct ListedPhone {
    /// Phone number id.
    pub id: String,
    /// As the API shows it (or `unknown`).
    pub display_phone_number: String,
    /// The business name (or `unknown`).
    pub verified_name: String,
    /// Quality rating (or `unknown`).
    pub quality_rating: String,
    /// `status` (or `unknown`).
    pub status: String,
    /// Messaging limit tier (or `unknown`).
    pub tier: String,
}

impl PhoneMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = PhoneMetrics {
            info: Tracked::default(),
            quality: Tracked::default(),
            status: Tracked::default(),
            limit: Tracked::default(),
        };
        exp.register(
            "whatsapp_phone_number_info",
            "1 for each phone number listed by GET /{WABA-ID}/phone_numbers (every discovery.interval); labels give its display number and verified name",
            m.info.clone(),
        );
        exp.register(
            "whatsapp_phone_number_quality",
            "1 for the phone number's current quality_rating, 0 for the other ratings (GREEN, YELLOW, RED, UNKNOWN)",
            m.quality.clone(),
        );
        exp.register(
            "whatsapp_phone_number_status",
            "1 for the phone number's current status, 0 for the other statuses (CONNECTED, DISCONNECTED, UNVERIFIED, PENDING, FLAGGED, RESTRICTED)",
            m.status.clone(),
        );
        exp.register(
            "whatsapp_phone_number_messaging_limit",
            "1 for the phone number's current messaging limit tier",
            m.limit.clone(),
        );
        m
    }

    /// Records the numbers just listed for `waba_id`, and removes the series
    /// of its numbers no longer listed.
    pub fn record_listing(&self, waba_id: &str, listed: &[ListedPhone]) {
        let listed_ids: HashSet<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        let before: HashSet<String> = self
            .info
            .keys()
            .into_iter()
            .filter(|l| l.waba_id == waba_id)
            .map(|l| l.phone_number_id)
            .collect();
        let mut info_keep = HashSet::new();
        for p in listed {
            let id = p.id.as_str();
            let info = PhoneInfoLabels {
                phone_number_id: p.id.clone(),
                display_phone_number: p.display_phone_number.clone(),
                verified_name: p.verified_name.clone(),
                waba_id: waba_id.to_string(),
            };
            self.info.get_or_create(&info).set(1);
            info_keep.insert(info);
            one_hot(
                &self.quality,
                &RATINGS,
                &p.quality_rating,
                |l| (l.phone_number_id == id).then_some(l.rating.as_str()),
                |rating| QualityLabels {
                    phone_number_id: p.id.clone(),
                    rating,
                },
            );
            one_hot(
                &self.status,
                &STATUSES,
                &p.status,
                |l| (l.phone_number_id == id).then_some(l.status.as_str()),
                |status| NumberStatusLabels {
                    phone_number_id: p.id.clone(),
                    status,
                },
            );
            self.limit
                .retain(|l| l.phone_number_id != id || l.tier == p.tier);
            self.limit
                .get_or_create(&LimitLabels {
                    phone_number_id: p.id.clone(),
                    tier: p.tier.clone(),
                })
                .set(1);
        }
        self.info
            .retain(|l| l.waba_id != waba_id || info_keep.contains(l));
        for gone in before.iter().filter(|id| !listed_ids.contains(id.as_str())) {
            self.quality.retain(|l| &l.phone_number_id != gone);
            self.status.retain(|l| &l.phone_number_id != gone);
            self.limit.retain(|l| &l.phone_number_id != gone);
        }
    }
}
