//! Restarts with and without `state_file`.

use crate::support::*;
use whatsapp_exporter::sim::{SimActivity, SimEvent};

const STATUS: &str = "whatsapp_message_status_events_total";

#[tokio::test]
async fn restart_without_state_file_takes_a_new_baseline() {
    let (sim, url) = simulator().await;
    let yaml = config_yaml(&url, "", "");
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    assert_eq!(exp.scrape().await.sum(STATUS, &[]), 1.0);
    exp.stop().await;

    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let exp = Exporter::start(&yaml).await;
    // Nothing from before the restart is counted into the reset counter.
    let m = exp.scrape().await;
    assert_eq!(m.sum(STATUS, &[]), 0.0);
    assert_eq!(m.val("whatsapp_seen_events", &[("target", PHONE)]), 2.0);
    exp.stop().await;
}

#[tokio::test]
async fn restart_with_state_file_counts_downtime_events_once() {
    let (sim, url) = simulator().await;
    let dir = temp_dir("state");
    let state = dir.join("state.json");
    let yaml = config_yaml(&url, "", &format!("state_file: {}\n", state.display()));
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now() - 100)]);
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    let t = now();
    let msg = sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", t), true);
    let m = exp.scrape().await;
    assert_eq!(m.sum(STATUS, &[]), 1.0);
    exp.stop().await;
    let saved = std::fs::read_to_string(&state).expect("state file written on shutdown");
    assert!(saved.contains("\"version\":1"), "{saved}");
    assert!(!saved.contains(TOKEN));

    // While the exporter is down: three new status events and an activity.
    sim.add_event(PHONE, &msg, SimEvent::new("DELIVERED", t + 1), false);
    sim.add_event(PHONE, &msg, SimEvent::new("READ", t + 2), false);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", t + 2)]);
    sim.add_activity(
        WABA,
        SimActivity::new("PERMISSION", "PERMISSION_UPDATED", t + 3),
        true,
    );

    let exp = Exporter::start(&yaml).await;
    for _ in 0..2 {
        let m = exp.scrape().await;
        assert_eq!(m.sum(STATUS, &[]), 3.0);
        assert_eq!(
            m.val(
                STATUS,
                &[("phone_number_id", PHONE), ("delivery_status", "DELIVERED")]
            ),
            1.0
        );
        assert_eq!(
            m.val(
                STATUS,
                &[("phone_number_id", PHONE), ("delivery_status", "READ")]
            ),
            1.0
        );
        assert_eq!(
            m.val(
                STATUS,
                &[("phone_number_id", PHONE2), ("delivery_status", "SENT")]
            ),
            1.0
        );
        assert_eq!(m.sum("whatsapp_activity_events_total", &[]), 1.0);
        assert_eq!(
            m.get("whatsapp_state_file_writes_total", &[("result", "failure")]),
            None,
            "no write failed"
        );
        assert!(m.val("whatsapp_state_file_writes_total", &[("result", "success")]) >= 1.0);
    }
    exp.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn corrupt_state_file_is_set_aside_not_lost() {
    let (sim, url) = simulator().await;
    let dir = temp_dir("corrupt");
    let state = dir.join("state.json");
    std::fs::write(&state, b"{ not json").unwrap();
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let exp = Exporter::start(&config_yaml(
        &url,
        "",
        &format!("state_file: {}\n", state.display()),
    ))
    .await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(m.sum(STATUS, &[]), 0.0, "a new baseline, not a recount");
    let aside = dir.join("state.json.invalid");
    assert_eq!(std::fs::read(&aside).unwrap(), b"{ not json");
    exp.stop().await;
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\"version\":1")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
