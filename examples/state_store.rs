//! What persisting the seen-state costs: the JSON state file of earlier
//! releases (every write serialises every remembered event of every target)
//! against the state store (each collection writes what it changed), at
//! `--targets` numbers x `--events` remembered events each.
//!
//!   cargo run --release --example state_store
//!   cargo run --release --example state_store -- --targets 1000 --events 10000
//!
//! A "collection" changes `--changed` events of one number (new events and
//! state changes) and moves its sweep. Bytes written are the process's
//! `write_bytes` from /proc/self/io (what reached the block layer,
//! fsyncs included); peak RSS is VmHWM from /proc/self/status.

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use whatsapp_exporter::collector::seen::{Changes, Mark};
use whatsapp_exporter::collector::state_file::{SeenRecord, StateFile, TargetRecord, VERSION};
use whatsapp_exporter::collector::store::{Store, TargetWrite};

#[derive(Parser)]
struct Args {
    /// Phone numbers.
    #[arg(long, default_value_t = 1000)]
    targets: usize,
    /// Remembered events per number.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Events one collection changes.
    #[arg(long, default_value_t = 20)]
    changed: usize,
    /// Collections measured.
    #[arg(long, default_value_t = 200)]
    collections: usize,
}

fn io_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")?
                    .trim()
                    .trim_end_matches(" kB")
                    .parse::<f64>()
                    .ok()
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn record(t: usize, events: usize) -> TargetRecord {
    TargetRecord {
        last_event_timestamp: Some(1_790_000_000),
        seen: (0..events as u64)
            .map(|k| SeenRecord {
                key: ((t as u64) << 32) | k,
                mark: Mark {
                    time: 1_790_000_000 + k as i64,
                    state: 1,
                    app: 1,
                    ..Mark::default()
                },
            })
            .collect(),
        webhook_states: vec!["DELIVERED".into()],
        applications: vec!["1234".into()],
        ..TargetRecord::default()
    }
}

fn key(t: usize) -> String {
    format!("message_history/{}", 1_000_000_000_000 + t)
}

/// Writes the JSON file as earlier releases did: whole, to a temporary file, fsync, rename.
fn json_write(path: &Path, file: &StateFile) -> usize {
    let json = serde_json::to_vec(file).unwrap();
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&json).unwrap();
        f.sync_all().unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
    json.len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("wa-state-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let total = args.targets * args.events;
    println!(
        "{} numbers x {} events = {} remembered events; a collection changes {} events of one number\n",
        args.targets, args.events, total, args.changed
    );

    // The JSON file: every write is all of it.
    let json_path = dir.join("state.json");
    let mut file = StateFile {
        version: VERSION,
        ..StateFile::default()
    };
    for t in 0..args.targets {
        file.targets.insert(key(t), record(t, args.events));
    }
    let rounds = 3;
    let before = io_written();
    let started = Instant::now();
    let mut size = 0;
    for _ in 0..rounds {
        size = json_write(&json_path, &file);
    }
    let json_time = started.elapsed().as_secs_f64() / rounds as f64;
    let json_bytes = (io_written() - before) / rounds;
    let json_rss = peak_rss_mib();
    drop(file);

    // The store: imported from that file once, then one write per collection.
    let db = dir.join("state.db");
    std::fs::copy(&json_path, &db).unwrap();
    let started = Instant::now();
    let (store, _) = Store::open(&db, 0).unwrap();
    let import = started.elapsed().as_secs_f64();
    drop(store);
    let started = Instant::now();
    let (store, _) = Store::open(&db, 0).unwrap();
    let mut loaded = 0;
    for t in 0..args.targets {
        loaded += store.load(&key(t)).unwrap().map_or(0, |r| r.seen.len());
    }
    let startup = started.elapsed().as_secs_f64();
    assert_eq!(loaded, total);
    let write = |t: usize, round: usize| {
        let changes = (0..args.changed as u64)
            .map(|k| {
                let key = ((t as u64) << 32) | ((round as u64 * 1_000 + k) % args.events as u64);
                (key, Some(Mark::at(1_790_100_000 + round as i64)))
            })
            .collect();
        let mut record = record(t, 0);
        record.sweep.pages = round as u32;
        TargetWrite {
            key: key(t),
            record,
            changes: Changes::Keys(changes),
            saved_at: 1_790_100_000,
        }
    };
    let before = io_written();
    let started = Instant::now();
    for round in 0..args.collections {
        store
            .write(write(round % args.targets, round))
            .await
            .unwrap();
    }
    let one_time = started.elapsed().as_secs_f64() / args.collections as f64;
    let one_bytes = (io_written() - before) / args.collections as u64;
    // A scrape: every number's collection at once (they share transactions).
    let before = io_written();
    let started = Instant::now();
    let writes: Vec<_> = (0..args.targets)
        .map(|t| store.write(write(t, args.collections + 1)))
        .collect();
    for w in futures_util::future::join_all(writes).await {
        w.unwrap();
    }
    let scrape_time = started.elapsed().as_secs_f64();
    let scrape_bytes = io_written() - before;
    store.close().await;
    let store_size = std::fs::metadata(&db).unwrap().len();

    println!("| | bytes written | time | file size |");
    println!("|---|---|---|---|");
    println!(
        "| JSON file, any write (earlier releases: per collection that changed anything) | {:.1} MB | {:.0} ms | {:.1} MB |",
        json_bytes as f64 / 1e6,
        json_time * 1e3,
        size as f64 / 1e6
    );
    println!(
        "| store, one collection's write | {:.1} kB | {:.2} ms | {:.1} MB |",
        one_bytes as f64 / 1e3,
        one_time * 1e3,
        store_size as f64 / 1e6
    );
    println!(
        "| store, a scrape of all {} numbers (group commit) | {:.1} MB | {:.0} ms | |",
        args.targets,
        scrape_bytes as f64 / 1e6,
        scrape_time * 1e3
    );
    println!(
        "\nimport of the JSON file: {:.1} s; start-up (open + load every number): {:.2} s",
        import, startup
    );
    println!(
        "peak RSS: {:.0} MiB after the JSON writes, {:.0} MiB at the end",
        json_rss,
        peak_rss_mib()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
