//! API cost of message_history per phone number, by traffic: the exporter's
//! own driver and collector walk a simulated number on a virtual clock (one
//! collection a minute, the default `min_interval`, for `--hours` after a
//! baseline of a full 24 h lookback window), and the program counts the
//! calls, the truncated walks and the sweeps, and how long each late event
//! (a READ minutes to hours after its message) waited to be counted.
//!
//!   cargo run --release --example sweep_cost
//!   cargo run --release --example sweep_cost -- --rates 1,10,60 --hours 6
//!
//! `whole window` is what every collection did before the rolling sweep (the
//! walk to the lookback edge or `max_pages`, at the old default of 10 and
//! with no limit); `head + sweep` is the current collection at the defaults.
//! Messages have 100 to a page; each gets SENT, DELIVERED 2 s later, and
//! half of them a READ between 1 minute and 8 hours later.

use std::collections::HashMap;

use clap::Parser;
use whatsapp_exporter::collector::TargetState;
use whatsapp_exporter::collector::driver::{drive, run};
use whatsapp_exporter::collector::message_history::MessageHistoryCollector;
use whatsapp_exporter::collector::sweep::{Reach, Step};
use whatsapp_exporter::config::CollectConfig;
use whatsapp_exporter::error::GraphError;
use whatsapp_exporter::fnv;
use whatsapp_exporter::graph::model::{
    Cursors, EventList, MessageHistory, Page, Paging, StatusEvent,
};
use whatsapp_exporter::graph::{PageSource, Pager};
use whatsapp_exporter::metrics::{Exposition, Metrics};

const PAGE: usize = 100;
const LOOKBACK: i64 = 24 * 3600;
const INTERVAL: i64 = 60;

#[derive(Parser)]
struct Args {
    /// Messages per minute, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 60])]
    rates: Vec<u32>,
    /// Hours of collections measured after the baseline.
    #[arg(long, default_value_t = 6)]
    hours: i64,
}

/// One message: its time and events (id, status, time).
struct Message {
    id: String,
    events: Vec<(String, &'static str, i64)>,
}

/// A phone number's history, oldest message first, as of `now`.
struct World {
    messages: Vec<Message>,
    now: i64,
    rng: u64,
}

impl World {
    fn next_random(&mut self) -> u64 {
        // xorshift64: the same run every time.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Messages sent in `(from, to]` at `rate` a minute.
    fn send(&mut self, from: i64, to: i64, rate: u32) {
        let step = 60.0 / f64::from(rate);
        let first = (from as f64 / step).floor() as i64 + 1;
        let last = (to as f64 / step).floor() as i64;
        for k in first..=last {
            let t = (k as f64 * step) as i64;
            let n = self.messages.len();
            let mut events = vec![
                (format!("s{n}"), "SENT", t),
                (format!("d{n}"), "DELIVERED", t + 2),
            ];
            if self.next_random().is_multiple_of(2) {
                // 1 minute to 8 hours, spread evenly on a log scale.
                let x = (self.next_random() % 1000) as f64 / 1000.0;
                let delay = (60.0 * 480f64.powf(x)) as i64;
                events.push((format!("r{n}"), "READ", t + delay));
            }
            self.messages.push(Message {
                id: format!("m{n}"),
                events,
            });
        }
    }

    fn page(&self, after: Option<usize>) -> Page<MessageHistory> {
        // Newest first; a cursor is the index of the next message to serve.
        let top = after.unwrap_or(self.messages.len());
        let from = top.saturating_sub(PAGE);
        let data = self.messages[from..top]
            .iter()
            .rev()
            .map(|m| MessageHistory {
                id: Some(m.id.clone()),
                message_id: None,
                events: Some(EventList {
                    data: m
                        .events
                        .iter()
                        .filter(|e| e.2 <= self.now)
                        .map(|(id, status, t)| StatusEvent {
                            id: Some(id.clone()),
                            delivery_status: Some((*status).into()),
                            timestamp: Some(*t),
                            webhook_update_state: Some("DELIVERED".into()),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })
            .collect();
        let paging = (from > 0).then(|| Paging {
            cursors: Some(Cursors {
                after: Some(from.to_string()),
            }),
            next: Some("https://graph.example/next".into()),
        });
        Page {
            data,
            paging,
            invalid: Vec::new(),
        }
    }
}

struct Source<'w>(&'w World);

impl PageSource<MessageHistory> for Source<'_> {
    async fn fetch(&mut self, after: Option<&str>) -> Result<Page<MessageHistory>, GraphError> {
        let after = match after {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| GraphError::Decode(c.into()))?),
        };
        Ok(self.0.page(after))
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Every collection walks to the lookback edge or `max_pages`.
    Whole(u32),
    /// The head and the rolling sweep at the defaults.
    Sweep,
}

#[derive(Default)]
struct Report {
    collections: u64,
    calls: u64,
    max_calls: u32,
    truncated: u64,
    sweeps: Vec<f64>,
    late: u64,
    late_counted: u64,
    delays: Vec<i64>,
}

fn simulate(rate: u32, hours: i64, mode: Mode, rt: &tokio::runtime::Runtime) -> Report {
    let defaults = CollectConfig::default();
    let metrics = Metrics::register(&mut Exposition::default(), "bench", "bench");
    let collector = MessageHistoryCollector::new(
        metrics.events.clone(),
        ["FAILED".to_string()].into(),
        20,
        defaults.undelivered_after,
    );
    let start = 1_800_000_000;
    let mut world = World {
        messages: Vec::new(),
        now: start,
        rng: 0x9e37_79b9_7f4a_7c15,
    };
    world.send(start - LOOKBACK, start, rate);
    let mut st = TargetState::default();
    let mut report = Report::default();
    // Late events not counted yet: key -> time it appeared.
    let mut waiting: HashMap<u64, i64> = HashMap::new();
    let end = start + hours * 3600;
    let mut now = start;
    while now <= end {
        world.now = now;
        if now > start {
            world.send(now - INTERVAL, now, rate);
            // READs that became visible in this minute, on messages
            // sent before it: a late event.
            for m in world.messages.iter().rev().take(rate as usize * 600) {
                for (id, status, t) in &m.events {
                    if *status == "READ" && *t > now - INTERVAL && *t <= now {
                        waiting.insert(fnv::hash(&["event", id]), *t);
                        report.late += 1;
                    }
                }
            }
        }
        let mut walk = st.begin(now - LOOKBACK, now + LOOKBACK);
        let baseline = !st.baseline_done;
        let source = Source(&world);
        let (calls, truncated, swept) = match mode {
            Mode::Whole(max_pages) => {
                let mut pager = Pager::new(source, max_pages);
                let end = rt.block_on(drive(&collector, &mut pager, "1", &mut st, &mut walk));
                let end = end.expect("the simulated API never fails");
                (
                    pager.pages(),
                    end == whatsapp_exporter::graph::End::MaxPages,
                    None,
                )
            }
            Mode::Sweep => {
                let reach = Reach {
                    max_pages: defaults.max_pages,
                    sweep_pages: defaults.sweep_pages,
                    head_age: defaults.head_age.as_secs() as i64,
                    now: now as f64,
                };
                let mut pager = Pager::new(source, reach.max_pages);
                let walked =
                    rt.block_on(run(&collector, &mut pager, "1", &mut st, &mut walk, &reach));
                let walked = walked.expect("the simulated API never fails");
                let swept = walked.swept.filter(|_| walked.step != Step::Baseline);
                (pager.pages(), walked.truncated, swept)
            }
        };
        st.finish(&walk, true);
        if !baseline {
            report.collections += 1;
            report.calls += u64::from(calls);
            report.max_calls = report.max_calls.max(calls);
            report.truncated += u64::from(truncated);
            report.sweeps.extend(swept);
            waiting.retain(|key, appeared| {
                if st.seen.contains(*key) {
                    report.late_counted += 1;
                    report.delays.push(now - *appeared);
                    false
                } else {
                    true
                }
            });
        }
        now += INTERVAL;
    }
    report
}

fn percentile<T: Copy + Ord>(v: &mut [T], p: f64) -> Option<T> {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied()
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    println!(
        "{} h of collections every {INTERVAL} s after a baseline; 24 h lookback, {PAGE} messages a page",
        args.hours
    );
    println!(
        "{:>8} {:>6} {:<22} {:>10} {:>9} {:>10} {:>10} {:>12} {:>14} {:>12}",
        "msg/min",
        "pages",
        "collection",
        "calls/coll",
        "max/coll",
        "calls/hour",
        "trunc/hour",
        "sweep s p50",
        "late counted",
        "late wait max"
    );
    for &rate in &args.rates {
        let pages = (rate as usize * 1440).div_ceil(PAGE);
        for (name, mode) in [
            ("whole window, max 10", Mode::Whole(10)),
            ("whole window, no max", Mode::Whole(100_000)),
            ("head + sweep", Mode::Sweep),
        ] {
            let mut r = simulate(rate, args.hours, mode, &rt);
            let per_hour = |n: u64| n as f64 * 3600.0 / (r.collections as f64 * INTERVAL as f64);
            let mut sweeps: Vec<i64> = r.sweeps.iter().map(|s| *s as i64).collect();
            let sweep = percentile(&mut sweeps, 0.5).map_or("-".to_string(), |s| s.to_string());
            let wait = percentile(&mut r.delays, 1.0).map_or("-".to_string(), |s| format!("{s} s"));
            println!(
                "{:>8} {:>6} {:<22} {:>10.2} {:>9} {:>10.0} {:>10.1} {:>12} {:>14} {:>12}",
                rate,
                pages,
                name,
                r.calls as f64 / r.collections as f64,
                r.max_calls,
                per_hour(r.calls),
                per_hour(r.truncated),
                sweep,
                format!("{}/{}", r.late_counted, r.late),
                wait,
            );
        }
    }
}
