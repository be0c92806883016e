//! Restarts with and without `state_file`.

use crate::support::*;
use serde_json::Value;
use std::path::PathBuf;

use whatsapp_exporter::sim::{SimActivity, SimEvent};

const HTTP_500: &str = "Webhook endpoint returned HTTP 500";

/// A fresh directory `name`, the state file in it, and the config using it.
fn with_state_file(url: &str, name: &str) -> (PathBuf, PathBuf, String) {
    let dir = temp_dir(name);
    let state = dir.join("state.db");
    let yaml = config_yaml(url, "", &format!("state_file: {}\n", state.display()));
    (dir, state, yaml)
}

/// An event seen PENDING, then FAILED with its error while the exporter
/// is down, counts once after a restart with the state file: one update to
/// FAILED, one failure, one error; nothing more on the next scrapes, and
/// the status event itself is not counted again.
#[tokio::test]
async fn a_state_change_while_down_counts_once_after_a_restart() {
    let (sim, url) = simulator().await;
    let (dir, _state, yaml) = with_state_file(&url, "state-change");
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    let msg = sim.add_message(PHONE, vec![SimEvent::new("SENT", now()).webhook("PENDING")]);
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "PENDING"), Some(1.0));
    assert_eq!(webhook(&m, WEBHOOK, "FAILED"), Some(0.0));
    exp.stop().await;

    assert!(sim.update_events(PHONE, &msg, |e| {
        e.webhook_update_state = Some("FAILED".into());
        e.error_description = Some(HTTP_500.into());
    }));
    let exp = Exporter::start(&yaml).await;
    for _ in 0..3 {
        let m = exp.scrape().await;
        assert_eq!(webhook(&m, WEBHOOK, "FAILED"), Some(1.0));
        assert_eq!(webhook(&m, FAILURES, "FAILED"), Some(1.0));
        assert_eq!(
            m.val(ERRORS, &[("phone_number_id", PHONE), ("error", HTTP_500)]),
            1.0
        );
        // A state change is no new status event: none was counted since the restart.
        assert_eq!(m.get(STATUS, &[("phone_number_id", PHONE)]), None);
        assert_eq!(webhook(&m, "whatsapp_webhook_events", "FAILED"), Some(1.0));
    }
    exp.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A state file of the previous release (version 1: events without their
/// state) loads; its events adopt the state they are next seen with, with
/// nothing counted, and a change after that counts.
#[tokio::test]
async fn a_version_1_state_file_loads_and_its_events_adopt_their_state() {
    let (sim, url) = simulator().await;
    let (dir, state, yaml) = with_state_file(&url, "state-v1");
    let msg = sim.add_message(PHONE, vec![SimEvent::new("SENT", now()).webhook("PENDING")]);
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    exp.stop().await;
    // Replace the store by a JSON file as version 1 wrote it: [key, time]
    // per event, nothing else. The next start imports it.
    let mut file = store_to_json(&state, |_| {});
    file["version"] = 1.into();
    for t in file["targets"].as_object_mut().unwrap().values_mut() {
        let t = t.as_object_mut().unwrap();
        for e in t
            .get_mut("seen")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            e.as_array_mut().unwrap().truncate(2);
        }
        t.retain(|k, _| ["last_event_timestamp", "seen", "partial"].contains(&k.as_str()));
    }
    assert!(!file.to_string().contains("PENDING"));
    std::fs::write(&state, file.to_string()).unwrap();

    assert!(sim.update_events(PHONE, &msg, |e| {
        e.webhook_update_state = Some("RETRYING".into());
    }));
    let exp = Exporter::start(&yaml).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(
        m.get(WEBHOOK, &[("webhook_update_state", "RETRYING")]),
        None
    );
    assert_eq!(m.get(STATUS, &[("phone_number_id", PHONE)]), None);
    assert_eq!(
        webhook(&m, "whatsapp_webhook_events", "RETRYING"),
        Some(1.0)
    );
    assert!(sim.update_events(PHONE, &msg, |e| {
        e.webhook_update_state = Some("FAILED".into());
    }));
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "FAILED"), Some(1.0));
    // RETRYING (a default failure state) has its series now, made at 0 with
    // the application's failure series: the adopted state was not counted.
    assert_eq!(webhook(&m, WEBHOOK, "RETRYING"), Some(0.0));
    exp.stop().await;
    // Imported once: the JSON file is kept beside the store, and the store holds the states now.
    let migrated = std::fs::read_to_string(dir.join("state.db.migrated")).unwrap();
    assert_eq!(migrated, file.to_string());
    let rec = &stored(&state)[&format!("message_history/{PHONE}")];
    assert!(rec.webhook_states.iter().any(|s| s == "FAILED"), "{rec:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

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
    let (dir, state, yaml) = with_state_file(&url, "state");
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now() - 100)]);
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    let t = now();
    let msg = sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", t), true);
    let m = exp.scrape().await;
    assert_eq!(m.sum(STATUS, &[]), 1.0);
    exp.stop().await;
    assert_eq!(stored(&state).len(), 3, "every target saved");
    let bytes = std::fs::read(&state).unwrap();
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));

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
            Some(0.0),
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
    let (dir, state, yaml) = with_state_file(&url, "corrupt");
    std::fs::write(&state, b"{ not json").unwrap();
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let exp = Exporter::start(&yaml).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(m.sum(STATUS, &[]), 0.0, "a new baseline, not a recount");
    let aside = dir.join("state.db.invalid");
    assert_eq!(std::fs::read(&aside).unwrap(), b"{ not json");
    exp.stop().await;
    assert_eq!(stored(&state).len(), 3, "a new store, written");
    std::fs::remove_dir_all(&dir).unwrap();
}
