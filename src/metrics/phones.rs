//! The phone numbers group: what the listing of an account's numbers says
//! of each (display number, quality rating, messaging limit).

use std::collections::HashSet;

use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::exposition::Exposition;
use crate::metrics::labels::{LimitLabels, PhoneInfoLabels, QualityLabels};
use crate::metrics::tracked::Tracked;

/// The quality ratings always exposed (0 or 1), whatever the API gives.
pub const RATINGS: [&str; 4] = ["GREEN", "YELLOW", "RED", "UNKNOWN"];

/// `whatsapp_phone_number_*`.
#[derive(Clone, Debug)]
pub struct PhoneMetrics {
    info: Tracked<PhoneInfoLabels, Gauge>,
    quality: Tracked<QualityLabels, Gauge>,
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
    /// Messaging limit tier (or `unknown`).
    pub tier: String,
}

impl PhoneMetrics {
    /// Creates the group's families and registers them.
    pub fn register(exp: &mut Exposition) -> Self {
        let m = PhoneMetrics {
            info: Tracked::default(),
            quality: Tracked::default(),
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
            let current = &p.quality_rating;
            // A rating the API gave before and gives no more goes.
            self.quality.retain(|l| {
                l.phone_number_id != id
                    || RATINGS.contains(&l.rating.as_str())
                    || l.rating == *current
            });
            for rating in RATINGS
                .iter()
                .map(|r| r.to_string())
                .chain([current.clone()])
            {
                let v = i64::from(rating == *current);
                self.quality
                    .get_or_create(&QualityLabels {
                        phone_number_id: p.id.clone(),
                        rating,
                    })
                    .set(v);
            }
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
            self.limit.retain(|l| &l.phone_number_id != gone);
        }
    }
}
