//! Accounts without `phone_number_ids`: their numbers are listed with
//! `GET /{WABA-ID}/phone_numbers`, join and leave as targets, and carry their
//! health (quality rating, messaging limit).

use std::time::Duration;

use crate::support::*;
use whatsapp_exporter::sim::{SimEvent, SimPhoneNumber};

const PHONE3: &str = "1234567890123458";

fn sent(m: &Metrics, phone: &str) -> Option<f64> {
    m.get(
        "whatsapp_message_status_events_total",
        &[("phone_number_id", phone), ("delivery_status", "SENT")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_numbers_join_leave_and_report_their_health() {
    let (sim, url) = simulator().await;
    sim.list_phone(WABA, PHONE, SimPhoneNumber::new("+1 555-0100", "Acme"));
    sim.list_phone(WABA, PHONE2, SimPhoneNumber::new("+1 555-0101", "Acme"));
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let yaml = format!(
        "graph_api:\n  base_url: {url}\naccounts:\n  - waba_id: \"{WABA}\"\n\
         collect:\n  min_interval: 0s\ndiscovery:\n  interval: 1s\n"
    );
    let exp = Exporter::start(&yaml).await;

    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(up(&m, "message_history", PHONE2), Some(1.0));
    assert_eq!(
        m.get(
            "whatsapp_phone_number_info",
            &[
                ("phone_number_id", PHONE),
                ("display_phone_number", "+1 555-0100"),
                ("verified_name", "Acme"),
                ("waba_id", WABA)
            ]
        ),
        Some(1.0)
    );
    let quality = |m: &Metrics, phone: &str, rating: &str| {
        m.get(
            "whatsapp_phone_number_quality",
            &[("phone_number_id", phone), ("rating", rating)],
        )
    };
    assert_eq!(quality(&m, PHONE, "GREEN"), Some(1.0));
    assert_eq!(quality(&m, PHONE, "RED"), Some(0.0));
    assert_eq!(
        m.get(
            "whatsapp_phone_number_messaging_limit",
            &[("phone_number_id", PHONE), ("tier", "TIER_1K")]
        ),
        Some(1.0)
    );
    assert_eq!(sim.requests("phone_numbers", WABA), 1);
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let m = exp.scrape().await;
    assert_eq!(sent(&m, PHONE), Some(1.0));
    assert_eq!(
        sim.requests("phone_numbers", WABA),
        1,
        "listed once per discovery.interval, not per scrape"
    );

    // PHONE2 leaves, PHONE3 joins, PHONE's quality drops and its tier rises.
    sim.unlist_phone(WABA, PHONE2);
    sim.list_phone(WABA, PHONE3, SimPhoneNumber::new("+1 555-0102", "Acme"));
    let mut worse = SimPhoneNumber::new("+1 555-0100", "Acme");
    worse.quality_rating = Some("RED".into());
    worse.messaging_limit_tier = Some("TIER_10K".into());
    sim.list_phone(WABA, PHONE, worse);
    sim.add_message(PHONE3, vec![SimEvent::new("SENT", now())]);
    let (m, text) = eventually(Duration::from_secs(20), "the next listing", || {
        let exp = &exp;
        async move {
            let text = exp.scrape_text(None).await;
            let m = Metrics::parse(&text);
            (up(&m, "message_history", PHONE3) == Some(1.0)).then_some((m, text))
        }
    })
    .await;
    assert!(
        !text.contains(PHONE2),
        "the number that left keeps series:\n{text}"
    );
    assert_eq!(quality(&m, PHONE, "RED"), Some(1.0));
    assert_eq!(quality(&m, PHONE, "GREEN"), Some(0.0));
    assert_eq!(
        m.find(
            "whatsapp_phone_number_messaging_limit",
            &[("phone_number_id", PHONE)]
        )
        .iter()
        .map(|s| s.labels["tier"].clone())
        .collect::<Vec<_>>(),
        ["TIER_10K"]
    );
    assert_eq!(
        sent(&m, PHONE),
        Some(1.0),
        "a number that stays keeps its counters"
    );
    assert_eq!(
        sent(&m, PHONE3),
        Some(0.0),
        "a new number starts with a baseline"
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.add_message(PHONE3, vec![SimEvent::new("SENT", now())]);
    let m = exp.scrape().await;
    assert_eq!(sent(&m, PHONE), Some(2.0));
    assert_eq!(sent(&m, PHONE3), Some(1.0));
    exp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_numbers_resume_from_the_state_file_after_a_restart() {
    let (sim, url) = simulator().await;
    sim.list_phone(WABA, PHONE, SimPhoneNumber::new("+1 555-0100", "Acme"));
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let dir = temp_dir("discovery-restart");
    let yaml = format!(
        "graph_api:\n  base_url: {url}\naccounts:\n  - waba_id: \"{WABA}\"\n\
         collect:\n  min_interval: 0s\nstate_file: {}\n",
        dir.join("state.db").display()
    );
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await; // discovery and baseline
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    assert_eq!(sent(&exp.scrape().await, PHONE), Some(1.0));
    exp.stop().await;

    // While it is down, one more message; a stop before any scrape keeps the file.
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    Exporter::start(&yaml).await.stop().await;
    let exp = Exporter::start(&yaml).await;
    let m = exp.scrape().await;
    assert_eq!(
        sent(&m, PHONE),
        Some(1.0),
        "the downtime message is counted once: the number resumed from its saved state, not a new baseline"
    );
    exp.stop().await;
}

/// A phone number listing slower than the scrape deadline: the scrape
/// answers by the deadline with every target it has not collected yet down,
/// not with stale values reported up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_listing_is_under_the_scrape_deadline() {
    let (sim, url) = simulator().await;
    sim.list_phone(WABA, PHONE, SimPhoneNumber::new("+1 555-0100", "Acme"));
    let yaml = format!(
        "graph_api:\n  base_url: {url}\naccounts:\n  - waba_id: \"{WABA}\"\n\
         collect:\n  min_interval: 0s\ndiscovery:\n  interval: 0s\n"
    );
    let exp = Exporter::start(&yaml).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(up(&m, "activities", WABA), Some(1.0));

    sim.set_fault(
        WABA,
        Some(whatsapp_exporter::sim::Fault::Delay(Duration::from_secs(3))),
    );
    let m = exp.scrape_with_timeout(1.5).await;
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    assert_eq!(up(&m, "activities", WABA), Some(0.0));
    sim.set_fault(WABA, None);
    exp.stop().await;
}

/// The listing asks for the number's status and the successor of the
/// deprecated messaging limit field: the status is one-hot over the six
/// documented values (another value passes through), the limit comes from
/// the successor when Meta gives it, and both follow a change.
#[tokio::test]
async fn number_status_and_the_new_messaging_limit_are_reported() {
    let (sim, url) = simulator().await;
    let mut flagged = SimPhoneNumber::new("+1 555-0100", "Acme");
    flagged.status = Some("FLAGGED".into());
    flagged.whatsapp_business_manager_messaging_limit = Some("TIER_2K".into());
    sim.list_phone(WABA, PHONE, flagged);
    let yaml = format!(
        "graph_api:\n  base_url: {url}\naccounts:\n  - waba_id: \"{WABA}\"\n\
         collect:\n  min_interval: 0s\ndiscovery:\n  interval: 0s\n"
    );
    let exp = Exporter::start(&yaml).await;
    let status = |m: &Metrics| {
        m.find(
            "whatsapp_phone_number_status",
            &[("phone_number_id", PHONE)],
        )
        .iter()
        .map(|s| (s.labels["status"].clone(), s.value))
        .collect::<std::collections::BTreeMap<_, _>>()
    };
    let tiers = |m: &Metrics| {
        m.find(
            "whatsapp_phone_number_messaging_limit",
            &[("phone_number_id", PHONE)],
        )
        .iter()
        .map(|s| s.labels["tier"].clone())
        .collect::<Vec<_>>()
    };
    let m = exp.scrape().await;
    let want: std::collections::BTreeMap<String, f64> = [
        "CONNECTED",
        "DISCONNECTED",
        "UNVERIFIED",
        "PENDING",
        "FLAGGED",
        "RESTRICTED",
    ]
    .iter()
    .map(|s| (s.to_string(), f64::from(u8::from(*s == "FLAGGED"))))
    .collect();
    assert_eq!(status(&m), want);
    assert_eq!(tiers(&m), ["TIER_2K"], "the successor wins over TIER_1K");

    let mut odd = SimPhoneNumber::new("+1 555-0100", "Acme");
    odd.status = Some("MIGRATED".into());
    sim.list_phone(WABA, PHONE, odd);
    let m = exp.scrape().await;
    let now = status(&m);
    assert_eq!(
        now.get("MIGRATED"),
        Some(&1.0),
        "an unknown status passes through"
    );
    assert_eq!(now.get("FLAGGED"), Some(&0.0));
    assert_eq!(now.values().sum::<f64>(), 1.0);
    assert_eq!(
        tiers(&m),
        ["TIER_1K"],
        "without the successor, the old field"
    );
    exp.stop().await;
}
