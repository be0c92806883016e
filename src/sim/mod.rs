//! A Graph API simulator, used by the tests and by `--demo`.
//!
//! It serves `GET /{version}/{WABA-ID}/activities` and
//! `GET /{version}/{Phone-Number-ID}/message_history` over loopback HTTP the
//! way the reference pages describe them: bearer-token check (401, code 190),
//! `fields` selection including the nested `events{...}` form, `limit`
//! validation (400, code 100), opaque cursors (stable when new records are
//! added at the top), newest first, and the `message_id` filter. Tests add
//! records and inject faults through [`Simulator`]'s methods.
//!
//! It builds its JSON on its own with `serde_json::json!` and never uses the
//! exporter's model types, so a misspelt field fails a test instead of
//! passing on both sides.

pub mod demo;
mod http;
mod render;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// `messaging_limit_tier`.
    pub messaging_limit_tier: Option<String>,
    /// `status`.
    pub status: Option<String>,
}

impl SimPhoneNumber {
    /// A connected number with GREEN quality in tier `TIER_1K`.
    pub fn new(display: &str, name: &str) -> Self {
        SimPhoneNumber {
            display_phone_number: Some(display.to_string()),
            verified_name: Some(name.to_string()),
            quality_rating: Some("GREEN".into()),
            messaging_limit_tier: Some("TIER_1K".into()),
            status: Some("CONNECTED".into()),
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

#[derive(Debug, Clone)]
struct Stored<T> {
    seq: u64,
    item: T,
}

#[derive(Debug, Clone)]
struct SimMessage {
    id: String,
    message_id: String,
    events: Vec<SimEvent>,
}

#[derive(Debug, Default)]
struct SimData {
    tokens: Vec<String>,
    headers: HashMap<String, Vec<(String, String)>>,
    wabas: BTreeMap<String, Vec<Stored<SimActivity>>>,
    /// Shared between phone numbers made by [`Simulator::add_phones_like`]
    /// until one of them changes (copy on write).
    phones: BTreeMap<String, Arc<Vec<Stored<SimMessage>>>>,
    faults: HashMap<String, Fault>,
    requests: HashMap<(String, String), u64>,
    traceparents: Vec<String>,
    /// `GET /{WABA-ID}/phone_numbers`: per WABA, its listed numbers.
    listed: BTreeMap<String, BTreeMap<String, SimPhoneNumber>>,
    /// Bumped by every change of a message history; keys the page cache.
    version: u64,
    /// Rendered message_history pages by (history, version, after, limit, fields).
    page_cache: HashMap<PageKey, Arc<render::RenderedPage>>,
    in_flight: usize,
    max_in_flight: usize,
    next_seq: u64,
    next_id: u64,
}

type PageKey = (usize, u64, Option<u64>, usize, String);

impl SimData {
    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 3_000_000_000_000_000u64 + self.next_id)
    }
    fn seq(&mut self) -> u64 {
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

    fn lock(&self) -> MutexGuard<'_, SimData> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `127.0.0.1:0`, serves in a background task, returns the base URL.
    pub async fn start(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = http::router(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(format!("http://{addr}"))
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
        d.version += 1;
        if ev.id.is_none() && !keep_id_absent {
            ev.id = Some(d.fresh_id());
        }
        let Some(msgs) = d.phones.get_mut(phone) else {
            return false;
        };
        match Arc::make_mut(msgs)
            .iter_mut()
            .find(|m| m.item.id == message)
        {
            Some(m) => {
                m.item.events.push(ev);
                true
            }
            None => false,
        }
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

    /// Requests received for `edge` (`activities` / `message_history`) of `target`.
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
