//! `--demo`: the simulator with live traffic, and a configuration pointing at it.
//!
//! One account with two phone numbers. Messages move through SENT, DELIVERED
//! and READ (some READs come minutes later), a few FAIL with an error, and a
//! few never get past SENT (the recipient's phone is off), so the stuck
//! messages gauge moves. Webhook states move after first sight as Meta's do:
//! each event starts PENDING and is DELIVERED to the webhook within seconds
//! (now and then after a RETRYING); while the second number's webhook is
//! down, 3 minutes in every 10, its events go RETRYING and then FAILED with
//! an error. Activity events arrive every half minute or so, and the API
//! fails one request 20 s after start and every 5 minutes after that. The
//! business is LIMITED in both numbers' health status, and one of the four
//! templates is PAUSED (quality RED).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{Config, LoadedConfig, TOKEN_ENV};
use crate::sim::records::{Fault, SimActivity, SimEntity, SimEvent, SimPhoneNumber, SimTemplate};
use crate::sim::store::Simulator;

/// The demo's token (it only ever travels over loopback to the simulator).
pub const DEMO_TOKEN: &str = "demo-token-not-a-secret";
/// The demo account.
pub const DEMO_WABA: &str = "100000000000001";
/// The demo phone numbers.
pub const DEMO_PHONES: [&str; 2] = ["200000000000001", "200000000000002"];
/// The demo account's business portfolio (LIMITED in its health status).
pub const DEMO_BUSINESS: &str = "500000000000001";
/// The demo app.
pub const DEMO_APP: &str = "9876543210987654";

const ERRORS: [&str; 4] = [
    "Message undeliverable",
    "Re-engagement message: more than 24 hours have passed since the recipient last replied",
    "Recipient phone number not a WhatsApp account",
    "Spam rate limit hit",
];
const ACTIVITIES: [(&str, &str); 6] = [
    ("USER", "USER_ADDED"),
    ("USER", "USER_REMOVED"),
    ("PERMISSION", "PERMISSION_UPDATED"),
    ("PHONE_NUMBER", "PHONE_NUMBER_ADDED"),
    ("API_ACCESS", "API_ACCESS_GRANTED"),
    ("TEMPLATE", "TEMPLATE_APPROVED"),
];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The demo configuration, for a simulator at `base_url`: the account's
/// phone numbers are discovered, so their health shows too.
pub fn config_yaml(base_url: &str) -> String {
    format!(
        "graph_api:\n  base_url: {base_url}\n  request_timeout: 5s\n\
         accounts:\n  - waba_id: \"{DEMO_WABA}\"\n\
         collect:\n  page_size: 50\n  max_pages: 20\n  lookback: 2h\n  min_interval: 5s\n\
         discovery:\n  interval: 1m\n\
         health:\n  interval: 1m\n"
    )
}

/// Starts the simulator with an hour of history and a traffic generator; returns its base URL.
pub async fn start() -> std::io::Result<(Simulator, String)> {
    let sim = Simulator::new(DEMO_TOKEN);
    sim.add_waba(DEMO_WABA);
    let mut rng = StdRng::from_os_rng();
    let t0 = now() - 3600;
    for (p, phone) in DEMO_PHONES.into_iter().enumerate() {
        // The second number, whose webhook fails now and then, is rated YELLOW.
        let mut listing = SimPhoneNumber::new(&format!("+1 555-010{p}"), "Demo Business");
        if p == 1 {
            listing.quality_rating = Some("YELLOW".into());
        }
        sim.list_phone(DEMO_WABA, phone, listing);
        for i in 0..60 {
            let ts = t0 + i * 60;
            let hook = webhook_state(&mut rng, p, ts);
            let events = if i % 10 == 9 {
                vec![
                    SimEvent::new("SENT", ts).webhook(hook),
                    SimEvent::new("FAILED", ts + 1)
                        .webhook(hook)
                        .error(ERRORS[(i / 10) as usize % ERRORS.len()]),
                ]
            } else {
                vec![
                    SimEvent::new("SENT", ts).webhook(hook),
                    SimEvent::new("DELIVERED", ts + 2).webhook(hook),
                    SimEvent::new("READ", ts + rng.random_range(5..50)).webhook(hook),
                ]
            };
            sim.add_message(phone, events);
        }
    }
    // Account health: the business is LIMITED (its messaging limit is
    // reached), so both numbers show it; one marketing template is PAUSED
    // for low quality.
    for phone in DEMO_PHONES {
        sim.set_health(
            phone,
            &[
                SimEntity::new("PHONE_NUMBER", phone, "AVAILABLE"),
                SimEntity::new("WABA", DEMO_WABA, "AVAILABLE"),
                SimEntity::new("BUSINESS", DEMO_BUSINESS, "LIMITED"),
                SimEntity::new("APP", DEMO_APP, "AVAILABLE"),
            ],
        );
    }
    let mut paused = SimTemplate::new("400000000000003", "spring_sale", "PAUSED", Some("RED"));
    paused.category = "MARKETING".into();
    sim.set_templates(
        DEMO_WABA,
        &[
            SimTemplate::new("400000000000001", "order_update", "APPROVED", Some("GREEN")),
            SimTemplate::new(
                "400000000000002",
                "shipping_notice",
                "APPROVED",
                Some("YELLOW"),
            ),
            paused,
            SimTemplate::new("400000000000004", "welcome", "PENDING", None),
        ],
    );
    for (i, (cat, kind)) in ACTIVITIES.iter().enumerate() {
        sim.add_activity(
            DEMO_WABA,
            SimActivity::new(cat, kind, t0 + i as i64 * 300),
            true,
        );
    }
    let url = sim.start().await?;
    tokio::spawn(generate(sim.clone(), rng));
    Ok((sim, url))
}

/// Starts the demo: the simulator with its traffic, and the configuration
/// pointing at it (with the demo token).
pub async fn start_configured() -> std::io::Result<(Simulator, LoadedConfig)> {
    let (sim, url) = start().await?;
    let loaded = Config::from_yaml(&config_yaml(&url), "demo config", |k| {
        (k == TOKEN_ENV).then(|| DEMO_TOKEN.to_string())
    })
    .map_err(std::io::Error::other)?;
    tracing::info!(simulator = %url, "demo mode: collecting from the embedded Graph API simulator");
    Ok((sim, loaded))
}

/// In-flight messages: (phone index, message id, last status).
type InFlight = Vec<(usize, String, &'static str)>;

/// An event whose webhook delivery is still under way.
#[derive(Debug, Clone)]
struct Hook {
    phone: usize,
    message: String,
    status: &'static str,
    /// When it moves next (unix seconds).
    due: i64,
    /// Its webhook state now.
    state: &'static str,
}

/// The demo's moving parts.
#[derive(Debug, Default)]
struct Traffic {
    inflight: InFlight,
    hooks: Vec<Hook>,
}

impl Traffic {
    /// Adds `ev` (webhook PENDING) to a message, new if `message` is `None`.
    fn send(
        &mut self,
        sim: &Simulator,
        rng: &mut StdRng,
        p: usize,
        message: Option<&str>,
        ev: SimEvent,
        ts: i64,
    ) -> String {
        let status = match ev.delivery_status.as_deref() {
            Some("SENT") => "SENT",
            Some("DELIVERED") => "DELIVERED",
            Some("READ") => "READ",
            _ => "FAILED",
        };
        let ev = ev.webhook("PENDING");
        let id = match message {
            Some(m) => {
                sim.add_event(DEMO_PHONES[p], m, ev, false);
                m.to_string()
            }
            None => sim.add_message(DEMO_PHONES[p], vec![ev]),
        };
        self.hooks.push(Hook {
            phone: p,
            message: id.clone(),
            status,
            due: ts + rng.random_range(1..6),
            state: "PENDING",
        });
        id
    }

    /// Moves the webhook states that are due: PENDING to DELIVERED (2 % via
    /// RETRYING); while a number's webhook is down, RETRYING then FAILED.
    fn deliver(&mut self, sim: &Simulator, rng: &mut StdRng, ts: i64) {
        let mut i = 0;
        while i < self.hooks.len() {
            if self.hooks[i].due > ts {
                i += 1;
                continue;
            }
            let h = &mut self.hooks[i];
            let down = webhook_down(h.phone, ts);
            let (next, error) = match h.state {
                "PENDING" if down || rng.random_bool(0.02) => ("RETRYING", None),
                "RETRYING" if down => ("FAILED", Some("Webhook endpoint returned HTTP 500")),
                _ => ("DELIVERED", None),
            };
            let status = h.status;
            sim.update_events(DEMO_PHONES[h.phone], &h.message, |e| {
                if e.delivery_status.as_deref() == Some(status) {
                    e.webhook_update_state = Some(next.to_string());
                    if let Some(d) = error {
                        e.error_description = Some(d.to_string());
                    }
                }
            });
            if next == "RETRYING" {
                h.state = next;
                h.due = ts + rng.random_range(20..60);
                i += 1;
            } else {
                self.hooks.swap_remove(i);
            }
        }
    }
}

async fn generate(sim: Simulator, mut rng: StdRng) {
    let mut traffic = Traffic::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        step(&sim, &mut rng, &mut traffic);
        // Now and then the API fails one request, as the real one does:
        // 20 s after start, then every 5 minutes.
        if n % 300 == 20 {
            let body = r#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","code":2,"is_transient":true}}"#;
            sim.set_fault(
                DEMO_PHONES[1],
                Some(Fault::Sequence(
                    [(503, body.to_string())].into_iter().collect(),
                )),
            );
        }
    }
}

/// The second number's webhook is down 3 minutes in every 10.
fn webhook_down(phone: usize, ts: i64) -> bool {
    phone == 1 && (ts / 60) % 10 < 3
}

/// The final webhook state of an event of the history made at start-up.
fn webhook_state(rng: &mut StdRng, phone: usize, ts: i64) -> &'static str {
    if webhook_down(phone, ts) {
        "FAILED"
    } else if rng.random_bool(0.02) {
        "RETRYING"
    } else {
        "DELIVERED"
    }
}

fn step(sim: &Simulator, rng: &mut StdRng, t: &mut Traffic) {
    let ts = now();
    if rng.random_bool(0.8) {
        let p = rng.random_range(0..DEMO_PHONES.len());
        let id = t.send(sim, rng, p, None, SimEvent::new("SENT", ts), ts);
        // 3 % never get further: the recipient's phone is off.
        if !rng.random_bool(0.03) {
            t.inflight.push((p, id, "SENT"));
        }
    }
    let mut i = 0;
    while i < t.inflight.len() {
        let (p, id, last) = t.inflight[i].clone();
        // Delivery within seconds; reading within a minute or, for some, much later.
        let chance = if last == "SENT" { 0.3 } else { 0.05 };
        if !rng.random_bool(chance) {
            i += 1;
            continue;
        }
        let next = match last {
            "SENT" if rng.random_bool(0.06) => "FAILED",
            "SENT" => "DELIVERED",
            _ => "READ",
        };
        let mut ev = SimEvent::new(next, ts);
        if next == "FAILED" {
            ev = ev.error(ERRORS[rng.random_range(0..ERRORS.len())]);
        }
        t.send(sim, rng, p, Some(&id), ev, ts);
        if next == "DELIVERED" {
            t.inflight[i].2 = "DELIVERED";
            i += 1;
        } else {
            t.inflight.swap_remove(i);
        }
    }
    t.deliver(sim, rng, ts);
    if rng.random_bool(0.03) {
        let (cat, kind) = ACTIVITIES[rng.random_range(0..ACTIVITIES.len())];
        sim.add_activity(DEMO_WABA, SimActivity::new(cat, kind, ts), true);
    }
    for phone in DEMO_PHONES {
        sim.trim_messages(phone, 5000);
    }
}
