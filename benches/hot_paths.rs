//! The hot paths of a scrape, measured with criterion:
//! - one message_history page (100 messages, 1 to 5 events each) decoded
//!   (strings borrowed from the body, as the client decodes it) and counted
//!   into the dedupe state, against the plain `serde_json::from_slice` of
//!   the same bytes into the owned structs (the old limit), and the
//!   exporter's owned decode (`decode_response`, what tests and fuzzing use);
//! - `/metrics` encoded for 1k, 10k and 100k series, OpenMetrics and classic.
//!
//! `cargo bench --bench hot_paths`; figures in BENCHMARKS.md.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use whatsapp_exporter::collector::TargetState;
use whatsapp_exporter::collector::message_history::ScanInto;
use whatsapp_exporter::graph::client::{decode_response, decode_response_into};
use whatsapp_exporter::graph::model::{MessageHistory, Page, Text};
use whatsapp_exporter::graph::paging::PageVisitor;
use whatsapp_exporter::metrics::encode::Format;
use whatsapp_exporter::metrics::labels::{MESSAGE_HISTORY, StatusLabels, WebhookLabels};
use whatsapp_exporter::metrics::{Exposition, Metrics, Scope, TargetLabels};
use whatsapp_exporter::secret::AccessToken;

/// The binary's allocator, so the hot paths are measured as they run (see `whatsapp_exporter::Allocator`).
#[global_allocator]
static ALLOCATOR: whatsapp_exporter::Allocator = whatsapp_exporter::Allocator;

const NOW: i64 = 1_795_000_000;
const STATUSES: [&str; 5] = ["SENT", "DELIVERED", "READ", "FAILED", "DELETED"];

/// A page as the Graph API sends it: 100 messages with 1 to 5 events each
/// (3 on average), every field the exporter asks for (message_history::FIELDS).
fn page_bytes() -> Vec<u8> {
    let data: Vec<_> = (0..100u64)
        .map(|m| {
            let events: Vec<_> = (0..(1 + m % 5))
                .map(|e| {
                    json!({
                        "id": format!("{}", 4_000_000_000_000_000u64 + m * 10 + e),
                        "delivery_status": STATUSES[e as usize],
                        "webhook_update_state": if m % 17 == 0 { "FAILED" } else { "DELIVERED" },
                        "timestamp": NOW - (m * 60 + e) as i64,
                        "application": {"id": "9876543210987654"},
                        "error_description": if e == 3 { json!("Message undeliverable") } else { json!(null) },
                    })
                })
                .collect();
            json!({
                "id": format!("{}", 3_000_000_000_000_000u64 + m),
                "message_id": format!("wamid.HBgLMTY0NzM3Nzc3NzUVAgARGBI5QTNEQTA2RjdGMEY4RTRG{m:06}AA=="),
                "events": {"data": events},
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "data": data,
        "paging": {
            "cursors": {"before": "QVFIUmxtX0t", "after": "QVFIUkZAXd3J"},
            "next": "https://graph.facebook.com/v23.0/1234567890123456/message_history?limit=100&after=QVFIUkZAXd3J"
        }
    }))
    .unwrap()
}

/// Only the decode: the page's number of messages.
struct Messages;

impl PageVisitor<MessageHistory> for Messages {
    type Out = usize;

    fn visit<S: Text>(&mut self, page: &Page<MessageHistory<S>>) -> usize {
        page.data.len()
    }
}

/// What the client does with a response body: redacts the token, checks
/// UTF-8, decodes the page borrowing from it, and hands it to `visitor`.
fn visit<V: PageVisitor<MessageHistory>>(
    bytes: &[u8],
    token: &AccessToken,
    mut visitor: V,
) -> V::Out {
    decode_response_into(200, bytes, token, &mut visitor)
        .unwrap()
        .0
}

fn decode_and_count(c: &mut Criterion) {
    let bytes = page_bytes();
    let token = AccessToken::new("EAAG-bench-token");
    let events = {
        let p: Page<MessageHistory> = serde_json::from_slice(&bytes).unwrap();
        p.data
            .iter()
            .map(|m| m.events.as_ref().map_or(0, |e| e.data.len()))
            .sum::<usize>()
    };
    let mut g = c.benchmark_group("message_history_page");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("serde_json_from_slice owned (the old limit)", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<Page<MessageHistory>>(black_box(
                &bytes,
            )))
            .unwrap()
        })
    });
    g.bench_function("decode_owned (decode_response)", |b| {
        b.iter(|| {
            black_box(decode_response::<MessageHistory>(200, black_box(&bytes), &token).unwrap())
        })
    });
    // The borrowed decode through serde_json's derived visitors, which the
    // client used before the direct reader (`graph::history_json`).
    g.bench_function("serde_json borrowed (before the direct reader)", |b| {
        b.iter(|| {
            let body = std::str::from_utf8(black_box(&bytes)).unwrap();
            black_box(serde_json::from_str::<Page<MessageHistory<Cow<'_, str>>>>(body).unwrap())
                .data
                .len()
        })
    });
    g.bench_function("decode_borrowed", |b| {
        b.iter(|| black_box(visit(black_box(&bytes), &token, Messages)))
    });
    // A walk of the window (what the driver hands the scan).
    let walk = TargetState::default().begin(NOW - 86_400, NOW + 86_400);
    g.bench_function("decode_and_count_all_new", |b| {
        b.iter_batched(
            TargetState::default,
            |mut st| {
                let scan = visit(
                    black_box(&bytes),
                    &token,
                    ScanInto {
                        st: &mut st,
                        walk: &walk,
                    },
                );
                assert_eq!(scan.new, events);
                black_box(scan.new)
            },
            BatchSize::SmallInput,
        )
    });
    let mut warm = TargetState::default();
    visit(
        &bytes,
        &token,
        ScanInto {
            st: &mut warm,
            walk: &walk,
        },
    );
    g.bench_function("decode_and_count_all_seen", |b| {
        b.iter(|| {
            let scan = visit(
                black_box(&bytes),
                &token,
                ScanInto {
                    st: &mut warm,
                    walk: &walk,
                },
            );
            assert_eq!(scan.seen, events);
            black_box(scan.seen)
        })
    });
    g.finish();
}

/// The exporter's families holding about `series` series, shaped like a real
/// exporter's: per phone number 5 target series, 5 statuses and 4 webhook states.
fn exposition(series: usize) -> Exposition {
    let mut r = Exposition::default();
    let m = Metrics::register(&mut r, "bench", "bench");
    let phones = series / 14;
    for p in 0..phones {
        let phone = format!("{}", 1_000_000_000_000_000u64 + p as u64);
        m.init_target(&TargetLabels {
            collector: MESSAGE_HISTORY,
            target: phone.clone(),
        });
        for s in STATUSES {
            m.events
                .status_events
                .get_or_create(&StatusLabels {
                    phone_number_id: phone.clone(),
                    delivery_status: s.into(),
                })
                .inc_by(p as u64);
        }
        for s in ["DELIVERED", "FAILED", "ERROR", "RETRYING"] {
            m.events
                .webhook_updates
                .get_or_create(&WebhookLabels {
                    phone_number_id: phone.clone(),
                    application_id: "9876543210987654".into(),
                    webhook_update_state: s.into(),
                })
                .inc();
        }
    }
    r
}

fn encode_metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_metrics");
    g.sample_size(20);
    for series in [1_000, 10_000, 100_000] {
        let r = exposition(series);
        let whole = Scope::default();
        let lines = r
            .encode(Format::OpenMetrics, &whole)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        for format in [Format::OpenMetrics, Format::Classic] {
            g.bench_function(format!("{}_{lines}_series", format.name()), |b| {
                b.iter(|| black_box(r.encode(format, &whole).unwrap().len()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decode_and_count, encode_metrics);
criterion_main!(benches);
