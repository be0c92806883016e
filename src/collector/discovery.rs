//! Phone numbers of the accounts configured without `phone_number_ids`,
//! listed with `GET /{WABA-ID}/phone_numbers` every `discovery.interval`:
//! they become message_history targets, and the same call gives their health
//! (quality rating, status, messaging limit). Discovered numbers join and leave like the targets of
//! a reloaded configuration (a baseline on joining).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::config::{AccountSpec, CollectorKind, LoadedConfig, TargetSpec, is_digits};
use crate::graph::model::PhoneNumber;
use crate::graph::{Edge, EdgeRequest, GraphClient, Pager};
use crate::metrics::PhoneMetrics;
use crate::metrics::labels::label_value;
use crate::metrics::phones::ListedPhone;

/// `fields=` of the listing.
/// `whatsapp_business_manager_messaging_limit` is the successor of the
/// deprecated `messaging_limit_tier`, which is read only when it is absent.
pub const FIELDS: &str = "id,display_phone_number,verified_name,quality_rating,status,whatsapp_business_manager_messaging_limit,messaging_limit_tier";

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
    /// passed (one listing at a time; concurrent callers wait and see it);
    /// no retry starts after `deadline`. Returns whether the discovered
    /// targets changed. An account whose listing fails keeps what it had.
    pub async fn refresh(
        &self,
        client: &GraphClient,
        phones: &PhoneMetrics,
        deadline: Option<Instant>,
    ) -> bool {
        let mut found = self.found.lock().await;
        if found.last.is_some_and(|l| l.elapsed() < self.interval) {
            return false;
        }
        found.last = Some(Instant::now());
        let mut changed = false;
        for a in self.accounts.iter().filter(|a| a.discover) {
            let mut pager = Pager::new(
                EdgeRequest {
                    client,
                    edge: Edge::PhoneNumbers,
                    id: &a.waba_id,
                    token: &a.token,
                    fields: FIELDS,
                    limit: self.page_size,
                    deadline,
                },
                self.max_pages,
            );
            let mut listed: Vec<PhoneNumber> = Vec::new();
            let result = loop {
                match pager.next_page::<PhoneNumber>().await {
                    Ok(Some(page)) => listed.extend(page.data),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = result {
                tracing::warn!(waba_id = %a.waba_id, error = %e, hint = e.hint(), "cannot list the account's phone numbers; keeping the last list");
                continue;
            }
            phones.record_listing(&a.waba_id, &health(&listed));
            let ids: BTreeSet<String> = listed
                .iter()
                .filter_map(|p| p.id.clone())
                .filter(|id| is_digits(id))
                .collect();
            if found.by_waba.get(&a.waba_id) != Some(&ids) {
                tracing::info!(waba_id = %a.waba_id, phone_numbers = ids.len(), "discovered phone numbers changed");
                changed = true;
            }
            found.by_waba.insert(a.waba_id.clone(), ids);
        }
        changed
    }
}

/// The listed numbers (those with an id) as their health series label them.
fn health(listed: &[PhoneNumber]) -> Vec<ListedPhone> {
    listed
        .iter()
        .filter_map(|p| {
            Some(ListedPhone {
                id: p.id.clone()?,
                display_phone_number: label_value(p.display_phone_number.as_deref()),
                verified_name: label_value(p.verified_name.as_deref()),
                quality_rating: label_value(p.quality_rating.as_deref()),
                status: label_value(p.status.as_deref()),
                tier: label_value(p.tier().as_deref()),
            })
        })
        .collect()
}
