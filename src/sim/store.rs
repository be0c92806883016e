//! The simulator's data and the handle tests hold: records by target,
//! faults, tokens, the requests seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::sim::records::{
    Fault, SimActivity, SimEntity, SimEvent, SimMessage, SimPhoneNumber, SimTemplate, Stored,
};
use crate::sim::render::RenderedPage;

#[derive(Debug, Default)]
pub(super) struct SimData {
    pub(super) tokens: Vec<String>,
    pub(super) headers: HashMap<String, Vec<(String, String)>>,
    pub(super) wabas: BTreeMap<String, Vec<Stored<SimActivity>>>,
    /// Shared between phone numbers made by [`Simulator::add_phones_like`]
    /// until one of them changes (copy on write).
    pub(super) phones: BTreeMap<String, Arc<Vec<Stored<SimMessage>>>>,
    pub(super) faults: HashMap<String, Fault>,
    pub(super) requests: HashMap<(String, String), u64>,
    pub(super) traceparents: Vec<String>,
    /// `GET /{WABA-ID}/phone_numbers`: per WABA, its listed numbers.
    pub(super) listed: BTreeMap<String, BTreeMap<String, SimPhoneNumber>>,
    /// `GET /{Phone-Number-ID}?fields=health_status`: the `health_status`
    /// value per number; a number without one is AVAILABLE alone.
    pub(super) health: HashMap<String, Value>,
    /// `GET /{WABA-ID}/message_templates`: per WABA, its templates as JSON.
    pub(super) templates: BTreeMap<String, Vec<Value>>,
    /// Bumped by every change of a message history; keys the page cache.
    pub(super) version: u64,
    /// Rendered message_history pages by (history, version, after, limit, fields).
    pub(super) page_cache: HashMap<PageKey, Arc<RenderedPage>>,
    pub(super) in_flight: usize,
    pub(super) max_in_flight: usize,
    pub(super) next_seq: u64,
    pub(super) next_id: u64,
}

pub(super) type PageKey = (usize, u64, Option<u64>, usize, String);

impl SimData {
    pub(super) fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 3_000_000_000_000_000u64 + self.next_id)
    }
    /// Message `message` of `phone`, to change (a new version of the data).
    fn message_mut(&mut self, phone: &str, message: &str) -> Option<&mut SimMessage> {
        self.version += 1;
        Arc::make_mut(self.phones.get_mut(phone)?)
            .iter_mut()
            .find(|m| m.item.id == message)
            .map(|m| &mut m.item)
    }

    pub(super) fn seq(&mut self) -> u64 {
        self.version += 1;
        self.next_seq += 1;
        self.next_seq
    }
}

/// Handle to a running (or not yet started) simulator. Cheap to clone.
#[derive(Clone, Default)]
pub struct Simulator {
    data: Arc<Mutex<SimData>>,
}

impl Simulator {
    /// A simulator accepting `token` as its only valid access token.
    pub fn new(token: &str) -> Self {
        let sim = Simulator::default();
        sim.lock().tokens = vec![token.to_string()];
        sim
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SimData> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `token` the only valid token.
    pub fn set_token(&self, token: &str) {
        self.lock().tokens = vec![token.to_string()];
    }

    /// Accepts `token` too.
    pub fn add_token(&self, token: &str) {
        self.lock().tokens.push(token.to_string());
    }

    /// Sends these extra response headers (e.g. `X-App-Usage`) on every
    /// answer for `target`, errors included.
    pub fn set_headers(&self, target: &str, headers: &[(&str, &str)]) {
        self.lock().headers.insert(
            target.to_string(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Creates a WABA (idempotent).
    pub fn add_waba(&self, waba: &str) {
        self.lock().wabas.entry(waba.to_string()).or_default();
    }

    /// Creates a phone number (idempotent).
    pub fn add_phone(&self, phone: &str) {
        self.lock().phones.entry(phone.to_string()).or_default();
    }

    /// Lists `phone` (creating it) under `waba` in `GET /{WABA-ID}/phone_numbers`,
    /// or updates its entry.
    pub fn list_phone(&self, waba: &str, phone: &str, info: SimPhoneNumber) {
        let mut d = self.lock();
        d.phones.entry(phone.to_string()).or_default();
        d.listed
            .entry(waba.to_string())
            .or_default()
            .insert(phone.to_string(), info);
    }

    /// Sets `phone`'s health status to these entities; the top-level
    /// `can_send_message` is the worst of theirs.
    pub fn set_health(&self, phone: &str, entities: &[SimEntity]) {
        let rank = |s: &str| match s {
            "BLOCKED" => 2,
            "LIMITED" => 1,
            _ => 0,
        };
        let worst = entities
            .iter()
            .filter_map(|e| e.can_send_message.as_deref())
            .max_by_key(|s| rank(s))
            .unwrap_or("AVAILABLE");
        let list: Vec<Value> = entities
            .iter()
            .map(|e| {
                let mut o = json!({"entity_type": e.entity_type, "id": e.id});
                if let Some(s) = &e.can_send_message {
                    o["can_send_message"] = json!(s);
                }
                if !e.errors.is_empty() {
                    o["errors"] = e
                        .errors
                        .iter()
                        .map(|(code, d)| json!({"error_code": code, "error_description": d, "possible_solution": "Visit Business Support Home."}))
                        .collect();
                }
                o
            })
            .collect();
        self.set_health_json(phone, json!({"can_send_message": worst, "entities": list}));
    }

    /// Sets `phone`'s `health_status` value as is (for malformed answers).
    pub fn set_health_json(&self, phone: &str, health_status: Value) {
        let mut d = self.lock();
        d.phones.entry(phone.to_string()).or_default();
        d.health.insert(phone.to_string(), health_status);
    }

    /// Sets `waba`'s message templates (creating the WABA), newest first.
    pub fn set_templates(&self, waba: &str, templates: &[SimTemplate]) {
        let list = templates
            .iter()
            .map(|t| {
                let mut o = json!({"name": t.name, "language": t.language, "category": t.category, "status": t.status});
                if let Some(id) = &t.id {
                    o["id"] = json!(id);
                }
                if let Some(q) = &t.quality {
                    o["quality_score"] = json!({"score": q, "date": 1_700_000_000});
                }
                o
            })
            .collect();
        self.set_templates_json(waba, list);
    }

    /// Sets `waba`'s templates as these JSON values, as is (for malformed answers).
    pub fn set_templates_json(&self, waba: &str, templates: Vec<Value>) {
        let mut d = self.lock();
        d.wabas.entry(waba.to_string()).or_default();
        d.templates.insert(waba.to_string(), templates);
    }

    /// Removes `phone` from its WABA's listing (its history stays).
    pub fn unlist_phone(&self, waba: &str, phone: &str) {
        if let Some(l) = self.lock().listed.get_mut(waba) {
            l.remove(phone);
        }
    }

    /// Creates phone numbers `phones` with the same message history as
    /// `like`, sharing its memory until one of them changes: thousands of
    /// numbers with large histories for the scale program.
    pub fn add_phones_like(&self, like: &str, phones: &[String]) {
        let mut d = self.lock();
        let shared = d.phones.entry(like.to_string()).or_default().clone();
        for p in phones {
            d.phones.insert(p.clone(), shared.clone());
        }
    }

    /// Adds an activity record at the top; fills in an id if it has none and
    /// `with_id` is true. Returns the id (empty when left out).
    pub fn add_activity(&self, waba: &str, mut rec: SimActivity, with_id: bool) -> String {
        let mut d = self.lock();
        if with_id && rec.id.is_none() {
            rec.id = Some(d.fresh_id());
        }
        let id = rec.id.clone().unwrap_or_default();
        let seq = d.seq();
        d.wabas
            .entry(waba.to_string())
            .or_default()
            .push(Stored { seq, item: rec });
        id
    }

    /// Adds a new message (at the top) with these events; events without an
    /// id get a fresh one. Returns the message's history id.
    pub fn add_message(&self, phone: &str, events: Vec<SimEvent>) -> String {
        let mut d = self.lock();
        let id = d.fresh_id();
        let events = events
            .into_iter()
            .map(|mut e| {
                if e.id.is_none() {
                    e.id = Some(d.fresh_id());
                }
                e
            })
            .collect();
        let seq = d.seq();
        Arc::make_mut(d.phones.entry(phone.to_string()).or_default()).push(Stored {
            seq,
            item: SimMessage {
                message_id: format!("wamid.SIM{id}=="),
                id: id.clone(),
                events,
            },
        });
        id
    }

    /// Adds an event to an existing message (it keeps its place in the list).
    /// `keep_id_absent` leaves the event without an id. Returns false if the message is unknown.
    pub fn add_event(
        &self,
        phone: &str,
        message: &str,
        mut ev: SimEvent,
        keep_id_absent: bool,
    ) -> bool {
        let mut d = self.lock();
        if ev.id.is_none() && !keep_id_absent {
            ev.id = Some(d.fresh_id());
        }
        d.message_mut(phone, message)
            .map(|m| m.events.push(ev))
            .is_some()
    }

    /// Changes the events of an existing message in place (its webhook
    /// state, its error: what Meta changes after first sight), as `change`
    /// does to each. Returns false if the message is unknown.
    pub fn update_events(
        &self,
        phone: &str,
        message: &str,
        change: impl FnMut(&mut SimEvent),
    ) -> bool {
        self.lock()
            .message_mut(phone, message)
            .map(|m| m.events.iter_mut().for_each(change))
            .is_some()
    }

    /// Drops the oldest messages of a phone number beyond `keep`.
    pub fn trim_messages(&self, phone: &str, keep: usize) {
        let mut d = self.lock();
        d.version += 1;
        if let Some(msgs) = d.phones.get_mut(phone) {
            let excess = msgs.len().saturating_sub(keep);
            Arc::make_mut(msgs).drain(..excess);
        }
    }

    /// Makes every request for `target` answer with `fault` (or normally, with `None`).
    pub fn set_fault(&self, target: &str, fault: Option<Fault>) {
        let mut d = self.lock();
        match fault {
            Some(f) => d.faults.insert(target.to_string(), f),
            None => d.faults.remove(target),
        };
    }

    /// Makes the requests for `edge` (as [`Simulator::requests`] names it)
    /// of `target` answer with `fault` (or normally, with `None`); the
    /// target's other edges are left alone.
    pub fn set_edge_fault(&self, edge: &str, target: &str, fault: Option<Fault>) {
        self.set_fault(&format!("{edge}:{target}"), fault);
    }

    /// Requests received for `edge` (`activities`, `message_history`,
    /// `phone_numbers`, `message_templates`, or `health_status` for the node read) of `target`.
    pub fn requests(&self, edge: &str, target: &str) -> u64 {
        self.lock()
            .requests
            .get(&(edge.to_string(), target.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Requests received in all.
    pub fn total_requests(&self) -> u64 {
        self.lock().requests.values().sum()
    }

    /// The W3C `traceparent` headers received, in order.
    pub fn traceparents(&self) -> Vec<String> {
        self.lock().traceparents.clone()
    }
}
