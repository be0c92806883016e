//! The real binary: flags, `--config.check`, `--demo`, and no token in its output.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimEvent};

const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

#[test]
fn version_prints_version_and_revision() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    let expected_prefix = format!("whatsapp-exporter {} (revision ", env!("CARGO_PKG_VERSION"));
    assert!(
        s.starts_with(&expected_prefix) && s.trim_end().ends_with(')'),
        "{s}"
    );
}

/// Every flag the binary defines (read from its definitions, not a list
/// kept by hand) is in `--help` with its description, and in the README.
#[test]
fn help_and_readme_document_every_flag() {
    use clap::CommandFactory;
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let help_flat = flat(&help);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let cmd = whatsapp_exporter::cli::Flags::command();
    let mut flags = 0;
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        flags += 1;
        assert!(help.contains(&flag), "--help lacks {flag}:\n{help}");
        if let Some(about) = arg.get_help() {
            let about = flat(&about.to_string());
            assert!(
                help_flat.contains(&about),
                "--help lacks the description of {flag}: {about:?}"
            );
        }
        assert!(readme.contains(&flag), "README.md does not mention {flag}");
    }
    assert!(flags >= 12, "only {flags} flags found");
    assert!(help.contains("--version"), "{help}");
}

#[test]
fn config_check_reports_every_problem_with_lines() {
    let dir = temp_dir("check");
    let good = dir.join("good.yml");
    let token = dir.join("token");
    std::fs::write(&token, "tok\n").unwrap();
    std::fs::write(
        &good,
        format!(
            "graph_api:\n  access_token_file: {}\naccounts:\n  - waba_id: \"1\"\n    phone_number_ids: [\"2\"]\n",
            token.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "--config.check",
            &format!("--config.file={}", good.display()),
        ])
        .env_remove("WHATSAPP_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "collect:\n  page_size: 0\n  concurrency: 0\naccounts:\n  - waba_id: \"abc\"\n    phone_number_ids: [\"2\", \"2\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config.check", "--config.file", bad.to_str().unwrap()])
        .env_remove("WHATSAPP_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    for want in [
        "line 2: collect.page_size: 0 is out of range 1..100",
        "line 3: collect.concurrency",
        "line 5: accounts[0].waba_id: \"abc\" is not a numeric id",
        "line 6: accounts[0].phone_number_ids[1]: 2 is configured twice",
        "WHATSAPP_ACCESS_TOKEN",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Starting with the same file fails the same way, before listening.
    let out = Command::new(BIN)
        .args([
            "--config.file",
            bad.to_str().unwrap(),
            "--web.listen-address=127.0.0.1:0",
        ])
        .env_remove("WHATSAPP_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("collect.page_size"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn demo_counters_move() {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["--demo", &format!("--web.listen-address=127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = Running(child);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = reqwest::Client::new();
    let moved = eventually(Duration::from_secs(60), "demo counters to move", || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            let m = Metrics::parse(&text);
            let total = m.sum("whatsapp_message_status_events_total", &[]);
            // Webhook states move after first sight: PENDING, then DELIVERED.
            // (Until the first events arrive, these series may not exist.)
            let any = |name, want: &[(&str, &str)]| {
                m.find(name, want).iter().map(|s| s.value).sum::<f64>()
            };
            let updates = |state| {
                any(
                    "whatsapp_webhook_updates_total",
                    &[("webhook_update_state", state)],
                )
            };
            let latency = any("whatsapp_message_status_latency_seconds_count", &[]);
            (total > 0.0 && updates("PENDING") > 0.0 && updates("DELIVERED") > 0.0 && latency > 0.0)
                .then_some(m)
        }
    })
    .await;
    // Three collections, and the health checks of two numbers and the account.
    assert_eq!(moved.find("whatsapp_up", &[]).len(), 6);
    assert_eq!(
        moved.get(
            "whatsapp_health_can_send_message",
            &[
                ("entity_type", "BUSINESS"),
                ("entity_id", whatsapp_exporter::sim::demo::DEMO_BUSINESS),
                ("state", "LIMITED")
            ]
        ),
        Some(1.0),
        "the demo's LIMITED business"
    );
    assert_eq!(
        moved
            .find("whatsapp_template_status", &[("status", "PAUSED")])
            .iter()
            .filter(|s| s.value == 1.0)
            .count(),
        1,
        "the demo's PAUSED template"
    );
    assert_eq!(moved.find("whatsapp_messages_undelivered", &[]).len(), 2);
    assert!(
        moved
            .find("whatsapp_up", &[])
            .iter()
            .all(|s| s.value == 1.0)
    );
    let log = running.stop_and_read_stderr();
    assert!(log.contains("demo mode"), "{log}");
}

#[tokio::test]
async fn token_never_in_logs_metrics_or_errors_at_debug() {
    let (sim, url) = simulator().await;
    // The API echoes the token back in its error message.
    sim.set_fault(
        PHONE,
        Some(Fault::GraphError {
            status: 400,
            code: 100,
            message: format!("Invalid parameter near access_token={TOKEN}"),
            is_transient: false,
        }),
    );
    sim.set_fault(
        PHONE2,
        Some(Fault::Raw {
            status: 200,
            body: format!("{{\"data\": \"{TOKEN}\"}}"),
        }),
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let dir = temp_dir("leak");
    let cfg = config_file_with_token_file(&url, &dir);
    let port = free_port();
    for format in ["logfmt", "json"] {
        let child = Command::new(BIN)
            .args([
                &format!("--config.file={}", cfg.display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=debug",
                &format!("--log.format={format}"),
            ])
            .env_remove("WHATSAPP_ACCESS_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let running = Running(child);
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = eventually(Duration::from_secs(20), "exporter to answer", || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).send().await.ok()?.text().await.ok() }
        })
        .await;
        // Two more scrapes of the same failures: still one log line per failing target.
        for _ in 0..2 {
            client.get(&url).send().await.unwrap();
        }
        let m = Metrics::parse(&text);
        assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
        assert_eq!(up(&m, "message_history", PHONE2), Some(0.0));
        assert_eq!(
            up(&m, "activities", WABA),
            Some(1.0),
            "the token file was used"
        );
        assert!(!text.contains(TOKEN));
        let log = running.stop_and_read_stderr();
        assert_eq!(log.matches("collection failing").count(), 2, "{log}");
        assert!(log.contains("error_code"), "{log}");
        assert!(
            !log.contains(TOKEN),
            "token leaked in {format} logs:\n{log}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
