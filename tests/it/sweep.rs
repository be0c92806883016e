//! message_history's rolling sweep against the simulator: a steady window
//! costs the head page plus `sweep_pages`, a late event deep in the window
//! counts once within one sweep, new messages count in the next collection,
//! pages shifting and restarts in the middle of a sweep lose and double
//! nothing, and truncation is counted per sweep.

use crate::support::*;

use whatsapp_exporter::sim::{SimEvent, Simulator};

const SWEEP: &str = "whatsapp_sweep_duration_seconds";
const TRUNCATED: &str = "whatsapp_collection_truncated_total";

/// `n` messages (SENT, then DELIVERED a second later) spread evenly over
/// the last 20 hours, oldest first; their ids, oldest first.
fn history(sim: &Simulator, n: i64) -> Vec<String> {
    let span = 20 * 3600;
    let start = now() - span;
    (0..n)
        .map(|i| {
            let t = start + i * span / n;
            sim.add_message(
                PHONE,
                vec![SimEvent::new("SENT", t), SimEvent::new("DELIVERED", t + 1)],
            )
        })
        .collect()
}

/// 10 messages a page, the other settings as given.
fn config(url: &str, collect: &str, extra: &str) -> String {
    config_yaml(url, &format!("  page_size: 10\n{collect}"), extra)
}

fn requests(sim: &Simulator) -> u64 {
    sim.requests("message_history", PHONE)
}

fn of_phone(m: &Metrics, name: &str) -> Option<f64> {
    m.get(name, &[("collector", "message_history"), ("target", PHONE)])
}

fn status(m: &Metrics, s: &str) -> f64 {
    m.get(
        STATUS,
        &[("phone_number_id", PHONE), ("delivery_status", s)],
    )
    .unwrap_or(0.0)
}

/// A 15-page window with nothing new: the baseline reads it all, then each
/// collection reads 1 head page + `sweep_pages` (2), and a sweep completes
/// in 7 collections (14 pages behind the head), counting nothing.
#[tokio::test]
async fn a_steady_window_costs_the_head_page_plus_the_sweep() {
    let (sim, url) = simulator().await;
    history(&sim, 150);
    let exp = Exporter::start(&config(&url, "", "")).await;
    let m = exp.scrape().await;
    assert_eq!(requests(&sim), 15, "the baseline reads the whole window");
    assert_eq!(of_phone(&m, TRUNCATED), Some(0.0));
    assert_eq!(of_phone(&m, SWEEP), None, "no sweep completed yet");
    for n in 1..=14 {
        let before = requests(&sim);
        let m = exp.scrape().await;
        assert_eq!(requests(&sim) - before, 3, "collection {n}");
        // The sweep's 14 pages take 7 collections.
        assert_eq!(of_phone(&m, SWEEP).is_some(), n >= 7, "collection {n}");
        assert_eq!(m.sum(STATUS, &[("phone_number_id", PHONE)]), 0.0);
        assert_eq!(of_phone(&m, TRUNCATED), Some(0.0));
    }
    exp.stop().await;
}

/// Events added to the oldest messages (page 15), and a webhook state
/// change on page 12, count once within one sweep, and not again when the
/// next sweep reads them.
#[tokio::test]
async fn a_late_event_deep_in_the_window_counts_once_within_one_sweep() {
    let (sim, url) = simulator().await;
    let ids = history(&sim, 150);
    let exp = Exporter::start(&config(&url, "", "")).await;
    exp.scrape().await;
    let t = now();
    sim.add_event(PHONE, &ids[0], SimEvent::new("READ", t), false);
    sim.add_event(PHONE, &ids[1], SimEvent::new("READ", t), false);
    sim.update_events(PHONE, &ids[30], |e| {
        e.webhook_update_state = Some("FAILED".into());
    });
    let mut counted_at = None;
    for n in 1..=16 {
        let m = exp.scrape().await;
        let read = status(&m, "READ");
        let failed = webhook(&m, WEBHOOK, "FAILED").unwrap_or(0.0);
        assert!(
            read <= 2.0 && failed <= 2.0,
            "collection {n}: {read} {failed}"
        );
        if read == 2.0 && failed == 2.0 {
            counted_at.get_or_insert(n);
        }
        if n > 7 {
            assert_eq!((read, failed), (2.0, 2.0), "collection {n}");
        }
    }
    // Seen by the sweep's last collection, not by the head.
    assert_eq!(counted_at, Some(7));
    exp.stop().await;
}

/// New messages, however many pages they fill (up to `max_pages`), count in
/// the next collection, while a sweep is half-way.
#[tokio::test]
async fn new_messages_count_in_the_next_collection_whatever_the_traffic() {
    let (sim, url) = simulator().await;
    history(&sim, 150);
    let exp = Exporter::start(&config(&url, "", "")).await;
    exp.scrape().await;
    exp.scrape().await;
    exp.scrape().await;
    let mut total = 0.0;
    for burst in [1, 35, 230] {
        let t = now();
        for _ in 0..burst {
            sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
        }
        total += f64::from(burst);
        let m = exp.scrape().await;
        assert_eq!(status(&m, "SENT"), total, "after a burst of {burst}");
        assert_eq!(of_phone(&m, TRUNCATED), Some(0.0));
    }
    exp.stop().await;
}

/// New messages arriving while a sweep is half-way push the pages down
/// under it: the events added deep in the window, both behind the sweep's
/// position and in front of it, count once, the new messages once, and
/// two whole sweeps later nothing has counted twice.
#[tokio::test]
async fn pages_shifting_in_the_middle_of_a_sweep_lose_and_double_nothing() {
    let (sim, url) = simulator().await;
    let ids = history(&sim, 150);
    let exp = Exporter::start(&config(&url, "", "")).await;
    exp.scrape().await;
    // Three collections: the sweep has read pages 2 to 7.
    for _ in 0..3 {
        exp.scrape().await;
    }
    let t = now();
    for _ in 0..25 {
        sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    }
    // Page 3 (swept already) and page 9 (not yet).
    sim.add_event(PHONE, &ids[125], SimEvent::new("READ", t), false);
    sim.add_event(PHONE, &ids[65], SimEvent::new("READ", t), false);
    let m = exp.scrape().await;
    assert_eq!(status(&m, "SENT"), 25.0);
    let mut m = m;
    for _ in 0..20 {
        m = exp.scrape().await;
        assert!(status(&m, "READ") <= 2.0);
    }
    assert_eq!(status(&m, "READ"), 2.0);
    assert_eq!(status(&m, "SENT"), 25.0);
    assert_eq!(m.sum(STATUS, &[("phone_number_id", PHONE)]), 27.0);
    exp.stop().await;
}

/// A restart with the state file in the middle of a sweep goes on with the
/// sweep where it was, counts what happened meanwhile once and nothing
/// seen before; a saved cursor the API refuses starts the sweep over.
#[tokio::test]
async fn a_restart_in_the_middle_of_a_sweep_counts_what_happened_once() {
    let (sim, url) = simulator().await;
    let ids = history(&sim, 150);
    let dir = temp_dir("sweep-restart");
    let state = dir.join("state.db");
    let yaml = config(&url, "", &format!("state_file: {}\n", state.display()));
    let exp = Exporter::start(&yaml).await;
    for _ in 0..4 {
        exp.scrape().await;
    }
    exp.stop().await;
    let sweep = stored(&state)[&format!("message_history/{PHONE}")]
        .sweep
        .clone();
    assert_eq!(sweep.pages, 6, "{sweep:?}");
    assert!(sweep.cursor.is_some(), "{sweep:?}");

    let t = now();
    for _ in 0..5 {
        sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    }
    sim.add_event(PHONE, &ids[0], SimEvent::new("READ", t), false);
    sim.add_event(PHONE, &ids[100], SimEvent::new("READ", t), false);
    let exp = Exporter::start(&yaml).await;
    let before = requests(&sim);
    let m = exp.scrape().await;
    assert_eq!(requests(&sim) - before, 3, "no new baseline");
    assert_eq!(status(&m, "SENT"), 5.0);
    assert_eq!(status(&m, "DELIVERED"), 0.0);
    // The sweep goes on from page 8: the oldest message in 4 more collections.
    for _ in 0..4 {
        exp.scrape().await;
    }
    let m = exp.scrape().await;
    assert_eq!(status(&m, "READ"), 1.0, "page 15 read within the sweep");
    for _ in 0..8 {
        exp.scrape().await;
    }
    let m = exp.scrape().await;
    assert_eq!(status(&m, "READ"), 2.0);
    assert_eq!(m.sum(STATUS, &[("phone_number_id", PHONE)]), 7.0);
    exp.stop().await;

    // A cursor the API no longer knows: the sweep starts over, `up` stays 1.
    store_to_json(&state, |t| {
        let rec = t.get_mut(&format!("message_history/{PHONE}")).unwrap();
        rec.sweep.cursor = Some("forgotten".into());
    });
    sim.add_event(PHONE, &ids[2], SimEvent::new("READ", now()), false);
    let exp = Exporter::start(&yaml).await;
    let mut m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    for _ in 0..7 {
        m = exp.scrape().await;
    }
    // This process counts from 0: the one new READ, nothing seen before.
    assert_eq!(status(&m, "READ"), 1.0);
    assert_eq!(m.sum(STATUS, &[("phone_number_id", PHONE)]), 1.0);
    exp.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With `max_pages: 4` a sweep of the 15-page window stops after 4 pages
/// (two collections): `whatsapp_collection_truncated_total` counts the
/// truncated baseline and each truncated sweep, not every collection. A
/// late event on a message past what the baseline reached is history (not
/// counted); one within its reach counts.
#[tokio::test]
async fn truncation_is_counted_per_sweep_and_history_past_the_baseline_never_counts() {
    let (sim, url) = simulator().await;
    let ids = history(&sim, 150);
    let exp = Exporter::start(&config(&url, "  max_pages: 4\n", "")).await;
    let m = exp.scrape().await;
    assert_eq!(requests(&sim), 4);
    assert_eq!(of_phone(&m, TRUNCATED), Some(1.0));
    let t = now();
    // Page 5 (past the baseline, within a sweep's reach) and page 3.
    sim.add_event(PHONE, &ids[105], SimEvent::new("READ", t), false);
    sim.add_event(PHONE, &ids[125], SimEvent::new("READ", t), false);
    for n in 1..=6 {
        let m = exp.scrape().await;
        assert_eq!(
            of_phone(&m, TRUNCATED),
            Some(1.0 + f64::from(n / 2)),
            "collection {n}"
        );
        assert_eq!(of_phone(&m, SWEEP).is_some(), n >= 2);
    }
    let m = exp.scrape().await;
    assert_eq!(status(&m, "READ"), 1.0);
    exp.stop().await;
}
