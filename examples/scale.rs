//! Scale program: the exporter (in process, on its own Tokio runtime) against
//! the simulator (on another) with N phone numbers x P pages of history and a
//! per-request latency; it scrapes and prints, per scrape, the wall time
//! against the floor (the pages each number's collection read, P for the
//! baseline and at most 1 + `sweep_pages` in steady state, x latency x
//! ceil(N / concurrency)), the Graph API requests, the exporter's CPU seconds, the process RSS, and the bytes of
//! seen-state per remembered event.
//!
//!   cargo run --release --example scale -- --phones 1000 --pages 3 --latency-ms 50 --concurrency 64
//!   cargo run --release --example scale -- --phones 1000 --pages 34 --latency-ms 0 --no-new-traffic
//!
//! Messages have 3 events each (SENT, DELIVERED, READ), 100 messages a page.
//! The phone numbers share one history in the simulator's memory (copy on
//! write), so the RSS is mostly the exporter's; the simulator's share is
//! printed before the exporter starts. Linux only (reads /proc).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use whatsapp_exporter::collector::seen::{Mark, SeenEvents};
use whatsapp_exporter::config::{Config, TOKEN_ENV};
use whatsapp_exporter::fnv;
use whatsapp_exporter::server::{self, AppState, Options};
use whatsapp_exporter::sim::{Fault, SimActivity, SimEvent, Simulator};

/// The binary's allocator, so the exporter is measured as it runs (see `whatsapp_exporter::Allocator`).
#[global_allocator]
static ALLOCATOR: whatsapp_exporter::Allocator = whatsapp_exporter::Allocator;

const TOKEN: &str = "EAAG-scale-token";

#[derive(Parser)]
struct Args {
    /// Phone numbers (message_history targets).
    #[arg(long, default_value_t = 1000)]
    phones: usize,
    /// Pages of 100 messages each phone number has in the lookback window.
    #[arg(long, default_value_t = 3)]
    pages: usize,
    /// Simulated latency of every Graph API request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// `collect.concurrency`.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Phone numbers per WABA (each WABA is an activities target).
    #[arg(long, default_value_t = 100)]
    phones_per_waba: usize,
    /// Skip the scrape with new traffic (it gives every number its own copy
    /// of the history in the simulator, which would blur the RSS figure).
    #[arg(long)]
    no_new_traffic: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim")
        .enable_all()
        .build()?;
    let exporter_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("exporter")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // The simulator: one history shared by every phone number.
    let now = unix_now();
    let phones: Vec<String> = (0..args.phones)
        .map(|i| format!("{}", 2_000_000_000_000_000u64 + i as u64))
        .collect();
    let wabas: Vec<String> = (0..args.phones.div_ceil(args.phones_per_waba))
        .map(|i| format!("{}", 1_000_000_000_000_000u64 + i as u64))
        .collect();
    let sim = Simulator::new(TOKEN);
    for w in &wabas {
        sim.add_waba(w);
        sim.add_activity(w, SimActivity::new("USER", "USER_ADDED", now - 3600), true);
    }
    let messages = args.pages * 100;
    for m in 0..messages {
        let t = now - 60 - (messages - m) as i64 * 5;
        sim.add_message(
            &phones[0],
            ["SENT", "DELIVERED", "READ"]
                .iter()
                .map(|s| SimEvent::new(s, t))
                .collect(),
        );
    }
    sim.add_phones_like(&phones[0], &phones[1..]);
    if args.latency_ms > 0 {
        for t in phones.iter().chain(&wabas) {
            sim.set_fault(
                t,
                Some(Fault::Delay(Duration::from_millis(args.latency_ms))),
            );
        }
    }
    let base_url = sim_rt.block_on(sim.start())?;
    let rss_sim = rss_kib("VmRSS");

    // The exporter.
    let accounts: String = wabas
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ids = phones
                .iter()
                .skip(i * args.phones_per_waba)
                .take(args.phones_per_waba)
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ");
            format!("  - waba_id: \"{w}\"\n    phone_number_ids: [{ids}]\n")
        })
        .collect();
    let yaml = format!(
        "graph_api:\n  base_url: {base_url}\n  request_timeout: 30s\naccounts:\n{accounts}\
         collect:\n  page_size: 100\n  max_pages: {}\n  lookback: 24h\n  min_interval: 0s\n  concurrency: {}\n",
        args.pages + 2,
        args.concurrency
    );
    let loaded = Config::from_yaml(&yaml, "scale", |k| {
        (k == TOKEN_ENV).then(|| TOKEN.to_string())
    })?;
    let state: Arc<AppState> = AppState::new(&loaded, Options::default())?;
    let listener = exporter_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    exporter_rt.spawn(server::run(listener, state, std::future::pending()));

    let floor_for = |pages: usize| {
        Duration::from_millis(args.latency_ms)
            * (pages as u32)
            * args.phones.div_ceil(args.concurrency) as u32
    };
    println!(
        "{} phone numbers x {} pages ({} events each), {} WABAs, latency {} ms, concurrency {}",
        args.phones,
        args.pages,
        messages * 3,
        wabas.len(),
        args.latency_ms,
        args.concurrency
    );
    println!(
        "floor: pages per number x latency x ceil(N / concurrency) (baseline {:.2} s); simulator RSS before the exporter: {} MiB",
        floor_for(args.pages).as_secs_f64(),
        rss_sim / 1024
    );
    println!(
        "{:<26} {:>8} {:>7} {:>9} {:>12} {:>8} {:>9} {:>10}",
        "scrape",
        "wall s",
        "xfloor",
        "requests",
        "exporter CPU",
        "sim CPU",
        "RSS MiB",
        "remembered"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let mut steps = vec![
        "first (baseline)",
        "steady, nothing new",
        "steady, nothing new",
    ];
    if !args.no_new_traffic {
        steps.push("new traffic (1 msg/number)");
    }
    let mut remembered = 0.0;
    for step in steps {
        if step.starts_with("new traffic") {
            for p in &phones {
                sim.add_message(
                    p,
                    ["SENT", "DELIVERED", "READ"]
                        .iter()
                        .map(|s| SimEvent::new(s, unix_now()))
                        .collect(),
                );
            }
        }
        let requests = sim.total_requests();
        let cpu = exporter_cpu_seconds();
        let sim_cpu = cpu_seconds("sim");
        let start = Instant::now();
        let text = client_rt.block_on(async { client.get(&url).send().await?.text().await })?;
        let wall = start.elapsed();
        let made = sim.total_requests() - requests;
        // The message_history pages each number read (the rest are the
        // WABAs' activities calls, one each).
        let per_number = made
            .saturating_sub(wabas.len() as u64)
            .div_ceil(args.phones.max(1) as u64);
        let floor = floor_for(per_number as usize);
        remembered = sum(&text, "whatsapp_seen_events{");
        // The collection targets (the health checks have `up` series too).
        let up = sum(&text, "whatsapp_up{collector=\"message_history\"")
            + sum(&text, "whatsapp_up{collector=\"activities\"");
        anyhow::ensure!(
            up as usize == args.phones + wabas.len(),
            "only {up} targets up"
        );
        println!(
            "{:<26} {:>8.2} {:>7.2} {:>9} {:>12.2} {:>8.2} {:>9} {:>10}",
            step,
            wall.as_secs_f64(),
            if floor.is_zero() {
                f64::NAN
            } else {
                wall.as_secs_f64() / floor.as_secs_f64()
            },
            made,
            exporter_cpu_seconds() - cpu,
            cpu_seconds("sim") - sim_cpu,
            rss_kib("VmRSS") / 1024,
            remembered
        );
    }
    let per_target = (remembered as usize) / (args.phones + wabas.len()).max(1);
    let mut seen = SeenEvents::default();
    for i in 0..per_target.max(1) {
        seen.insert(fnv::hash(&["event", &i.to_string()]), Mark::at(now));
    }
    println!(
        "peak RSS {} MiB (simulator's share about {} MiB); seen-state {:.1} bytes per remembered event (hash table of {} events)",
        rss_kib("VmHWM") / 1024,
        rss_sim / 1024,
        seen.heap_bytes() as f64 / seen.len() as f64,
        seen.len()
    );
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sum of the samples of a metric (classic text, lines starting with `prefix`).
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A field of /proc/self/status, in KiB.
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of the threads named `exporter` (the
/// exporter's runtime, its blocking pool included).
fn exporter_cpu_seconds() -> f64 {
    cpu_seconds("exporter")
}

/// User + system CPU seconds of the live threads whose name starts with `name`.
fn cpu_seconds(name: &str) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with(name) {
                continue;
            }
            // Fields after the command: state is 3rd overall, utime 14th, stime 15th.
            let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
            ticks += rest
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            ticks += rest
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks as f64 / ticks_per_second
}
