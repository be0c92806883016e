//! The latency of [`Fault::Delay`](crate::sim::Fault::Delay), kept to what
//! was asked.
//!
//! Tokio's timer counts in whole milliseconds and rounds every deadline up
//! to its next tick: a `tokio::time::sleep` of 10 ms took 1.1 ms longer
//! (median of 40, BENCHMARKS.md section 6), on every request. The scale
//! program charges that to the exporter, 48 requests in a row at 1,000 x 3.
//! Here one thread keeps the waiting requests' deadlines in order and
//! sleeps to the nearest with the operating system's timer: 0.1 to 0.2 ms late.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Waits `d` from now: never less, and not a millisecond tick more.
pub(super) async fn delay(d: Duration) {
    let deadline = Instant::now() + d;
    if let Some(timer) = timer() {
        let (wake, woken) = oneshot::channel();
        {
            let mut waiting = timer.waiting();
            let sooner = waiting
                .peek()
                .is_none_or(|Reverse(w)| deadline < w.deadline);
            waiting.push(Reverse(Waiting { deadline, wake }));
            // The thread sleeps to the nearest deadline: it needs waking only
            // when this one comes first (with equal delays, never).
            if sooner {
                timer.changed.notify_one();
            }
        }
        if woken.await.is_ok() {
            return;
        }
    }
    // Without the thread (it could not start, or is gone, which takes a
    // panic), Tokio's timer: never less.
    tokio::time::sleep_until(deadline.into()).await;
}

/// The requests waiting, nearest deadline first, and the thread that wakes them.
struct Timer {
    queue: Mutex<BinaryHeap<Reverse<Waiting>>>,
    changed: Condvar,
}

impl Timer {
    fn waiting(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Waiting>>> {
        // A heap is whole between pushes and pops; a panic cannot tear it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes each waiting request at its deadline, the nearest first.
    fn run(&self) {
        let mut waiting = self.waiting();
        loop {
            let now = Instant::now();
            while waiting.peek().is_some_and(|Reverse(w)| w.deadline <= now) {
                if let Some(Reverse(w)) = waiting.pop() {
                    // A request that is gone (its client hung up) wakes no one.
                    let _ = w.wake.send(());
                }
            }
            waiting = match waiting.peek().map(|Reverse(w)| w.deadline - now) {
                None => self
                    .changed
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    self.changed
                        .wait_timeout(waiting, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// A request waiting for its deadline.
struct Waiting {
    /// What the order below compares (the sender is not compared).
    deadline: Instant,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.deadline.cmp(&other.deadline)
    }
}

/// The timer, its thread started on first use (`None` if it could not be).
fn timer() -> Option<&'static Timer> {
    static TIMER: Timer = Timer {
        queue: Mutex::new(BinaryHeap::new()),
        changed: Condvar::new(),
    };
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("sim-timer".into())
            .spawn(|| TIMER.run())
            .is_ok()
    });
    started.then_some(&TIMER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_are_never_short_and_wake_in_deadline_order() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Queued longest first, so the thread must reorder them.
        for ms in [40u64, 5, 20, 0, 10] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                delay(Duration::from_millis(ms)).await;
                let _ = tx.send((ms, asked.elapsed()));
            });
        }
        drop(tx);
        let mut woke = Vec::new();
        while let Some(w) = rx.recv().await {
            woke.push(w);
        }
        let order: Vec<u64> = woke.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(order, [0, 5, 10, 20, 40]);
        for (ms, waited) in woke {
            assert!(
                waited >= Duration::from_millis(ms),
                "a delay of {ms} ms ended after {waited:?}"
            );
        }
    }
}
