//! Bytes per remembered event of the seen-state at every table size, measured
//! by a counting allocator (what the process really holds), next to the
//! table's own `heap_bytes()`, and the same for the previous layout (a
//! `HashMap<u64, i64>`, 16-byte entries in a power-of-two table).
//!
//! `cargo run --release --example seen_memory`; output in BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use whatsapp_exporter::collector::seen::{Mark, SeenEvents};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same pointer and layout, passed on.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn key(i: u64) -> u64 {
    whatsapp_exporter::fnv::hash(&["event", &i.to_string()])
}

fn main() {
    let sizes: Vec<u64> = [1_000u64, 10_000, 100_000, 1_000_000, 10_000_000].into();
    let max = *sizes.last().unwrap_or(&0);
    println!(
        "{:>10} {:>14} {:>14} {:>16}",
        "events", "new B/event", "worst so far", "old B/event"
    );
    let base = LIVE.load(Ordering::Relaxed);
    let mut seen = SeenEvents::default();
    let mut worst: f64 = 0.0;
    let mut worst_at = 0;
    let mut old_worst: f64 = 0.0;
    let mut old_worst_at = 0;
    let mut next = sizes.iter().peekable();
    for i in 1..=max {
        seen.insert(
            key(i),
            Mark {
                time: 1_795_000_000 + i as i64,
                state: 1,
                undelivered: i % 3 == 0,
                app: 1,
                error: 0,
            },
        );
        let live = LIVE.load(Ordering::Relaxed) - base;
        assert_eq!(live, seen.heap_bytes(), "heap_bytes() tells the truth");
        let per = live as f64 / i as f64;
        if per > worst && i >= 16 {
            worst = per;
            worst_at = i;
        }
        if next.peek() == Some(&&i) {
            next.next();
            println!("{i:>10} {per:>14.1} {worst:>14.1} {:>16}", "");
        }
    }
    println!("worst (16 events and up): {worst:.1} B/event at {worst_at} events");
    // After pruning half the window away.
    let before = seen.len();
    seen.prune(1_795_000_000 + max as i64 / 2);
    let live = LIVE.load(Ordering::Relaxed) - base;
    println!(
        "after a prune from {before} to {}: {:.1} B/event",
        seen.len(),
        live as f64 / seen.len() as f64
    );
    drop(seen);

    let base = LIVE.load(Ordering::Relaxed);
    let mut old: HashMap<u64, i64> = HashMap::new();
    let mut next = sizes.iter().peekable();
    for i in 1..=max {
        old.insert(key(i), i as i64);
        let per = (LIVE.load(Ordering::Relaxed) - base) as f64 / i as f64;
        if per > old_worst && i >= 16 {
            old_worst = per;
            old_worst_at = i;
        }
        if next.peek() == Some(&&i) {
            next.next();
            println!("{i:>10} {:>14} {:>14} {per:>16.1}", "", "");
        }
    }
    println!(
        "previous layout, worst (16 events and up): {old_worst:.1} B/event at {old_worst_at} events"
    );
}
