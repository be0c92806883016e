//! Phone numbers of the accounts configured without `phone_number_ids`,
//! listed with `GET /{WABA-ID}/phone_numbers` every `discovery.interval`:
//! they become message_history targets, and the same call gives their health
//! (quality rating, messaging limit). Discovered numbers join and leave like the targets of
//! a reloaded configuration (a baseline on joining).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::collector::label_value;
use crate::config::{AccountSpec, CollectorKind, LoadedConfig, TargetSpec, is_digits};
use crate::graph::GraphClient;
use crate::graph::PageRequest;
use crate::graph::model::PhoneNumber;
use crate::graph::paging::{Flow, walk};
use crate::metrics::{LimitLabels, Metrics, PhoneInfoLabels, QualityLabels};

/// `fields=` of the listing.
pub const FIELDS: &str =
    "id,display_phone_number,verified_name,quality_rating,messaging_limit_tier,status";

/// The quality ratings always exposed (0 or 1), whatever the API gives.
const RATINGS: [&str; 4] = ["GREEN", "YELLOW", "RED", "UNKNOWN"];

#[derive(Debug, Default)]
struct Found {
    last: Option<Instant>,
    /// Phone number ids listed last, per WABA.
    by_waba: BTreeMap<String, BTreeSet<String>>,
}

/// The accounts to list and what the last listings found.
#[derive(Debug)]
pub struct Discovery {
    accounts: Vec<AccountSpec>,
    interval: Duration,
    page_size: u32,
    max_pages: u32,
    found: Mutex<Found>,
}

impl Discovery {
    /// For a configuration; nothing listed yet.
    pub fn new(loaded: &LoadedConfig) -> Discovery {
        Discovery {
            accounts: loaded.accounts.clone(),
            interval: loaded.config.discovery.interval,
            page_size: loaded.config.collect.page_size,
            max_pages: loaded.config.collect.max_pages,
            found: Mutex::new(Found::default()),
        }
    }

    /// Takes over what `previous` (the discovery before a reload) found for
    /// the accounts that stay, so their numbers keep their state.
    pub async fn take_over(&self, previous: &Discovery) {
        let p = previous.found.lock().await;
        let mut found = self.found.lock().await;
        found.last = p.last;
        for a in &self.accounts {
            if let Some(ids) = p.by_waba.get(&a.waba_id) {
                found.by_waba.insert(a.waba_id.clone(), ids.clone());
            }
        }
    }

    /// The message_history targets of the accounts that discover, as last listed.
    pub async fn targets(&self) -> Vec<TargetSpec> {
        let found = self.found.lock().await;
        self.accounts
            .iter()
            .filter(|a| a.discover)
            .flat_map(|a| {
                found
                    .by_waba
                    .get(&a.waba_id)
                    .into_iter()
                    .flatten()
                    .map(|id| TargetSpec {
                        collector: CollectorKind::MessageHistory,
                        id: id.clone(),
                        waba_id: a.waba_id.clone(),
                        token: a.token.clone(),
                    })
            })
            .collect()
    }

    /// Lists every account's phone numbers if `discovery.interval` has
    /// passed (one listing at a time; concurrent callers wait and see it).
    /// Returns whether the discovered targets changed. An account whose
    /// listing fails keeps what it had.
    pub async fn refresh(&self, client: &GraphClient, metrics: &Metrics) -> bool {
        let mut found = self.found.lock().await;
        if found.last.is_some_and(|l| l.elapsed() < self.interval) {
            return false;
        }
        found.last = Some(Instant::now());
        let mut changed = false;
        for a in self.accounts.iter().filter(|a| a.discover) {
            let req = PageRequest {
                endpoint: CollectorKind::PhoneNumbers,
                id: &a.waba_id,
                token: &a.token,
                fields: FIELDS,
                limit: self.page_size,
                after: None,
                deadline: None,
            };
            let mut listed: Vec<PhoneNumber> = Vec::new();
            let (_, result) = walk::<PhoneNumber>(client, req, self.max_pages, |page| {
                listed.extend(page.data.iter().cloned());
                Flow::Continue
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(waba_id = %a.waba_id, error = %e, hint = e.hint(), "cannot list the account's phone numbers; keeping the last list");
                continue;
            }
            record_health(metrics, &a.waba_id, &listed);
            let ids: BTreeSet<String> = listed
                .iter()
                .filter_map(|p| p.id.clone())
                .filter(|id| is_digits(id))
                .collect();
            if a.discover && found.by_waba.get(&a.waba_id) != Some(&ids) {
                tracing::info!(waba_id = %a.waba_id, phone_numbers = ids.len(), "discovered phone numbers changed");
                changed = true;
            }
            found.by_waba.insert(a.waba_id.clone(), ids);
        }
        changed
    }
}

/// Records the health of the phone numbers just listed for `waba_id`, and
/// removes the health series of its numbers no longer listed.
fn record_health(m: &Metrics, waba_id: &str, listed: &[PhoneNumber]) {
    let listed_ids: HashSet<&str> = listed.iter().filter_map(|p| p.id.as_deref()).collect();
    let before: HashSet<String> = m
        .phone_info
        .keys()
        .into_iter()
        .filter(|l| l.waba_id == waba_id)
        .map(|l| l.phone_number_id)
        .collect();
    let mut info_keep = HashSet::new();
    for p in listed {
        let Some(id) = p.id.as_deref() else { continue };
        let info = PhoneInfoLabels {
            phone_number_id: id.to_string(),
            display_phone_number: label_value(p.display_phone_number.as_deref()),
            verified_name: label_value(p.verified_name.as_deref()),
            waba_id: waba_id.to_string(),
        };
        m.phone_info.get_or_create(&info).set(1);
        info_keep.insert(info);
        let current = label_value(p.quality_rating.as_deref());
        // A rating the API gave before and gives no more goes.
        m.phone_quality.retain(|l| {
            l.phone_number_id != id || RATINGS.contains(&l.rating.as_str()) || l.rating == current
        });
        for rating in RATINGS
            .iter()
            .map(|r| r.to_string())
            .chain([current.clone()])
        {
            let v = i64::from(rating == current);
            m.phone_quality
                .get_or_create(&QualityLabels {
                    phone_number_id: id.to_string(),
                    rating,
                })
                .set(v);
        }
        let tier = label_value(p.tier().as_deref());
        m.phone_limit
            .retain(|l| l.phone_number_id != id || l.tier == tier);
        m.phone_limit
            .get_or_create(&LimitLabels {
                phone_number_id: id.to_string(),
                tier,
            })
            .set(1);
    }
    m.phone_info
        .retain(|l| l.waba_id != waba_id || info_keep.contains(l));
    for gone in before.iter().filter(|id| !listed_ids.contains(id.as_str())) {
        m.phone_quality.retain(|l| &l.phone_number_id != gone);
        m.phone_limit.retain(|l| &l.phone_number_id != gone);
    }
}
