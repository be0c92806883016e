//! Work on many targets at once: each item a Tokio task of its own, at most
//! `limit` at a time, so decoding and counting pages runs on every worker
//! thread. (Polled as futures of one task, as `buffer_unordered` alone does,
//! they would all share that task's one core.)

use std::future::Future;

use futures_util::StreamExt;
use tracing::Instrument;

/// Runs `work` on each of `items`, at most `limit` at a time, each in a task
/// of its own in the current span; returns the outputs in the order the
/// tasks finished. A task that panicked is logged and has no output.
pub async fn fan_out<I, F, Fut>(items: I, limit: usize, mut work: F) -> Vec<Fut::Output>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    futures_util::stream::iter(items)
        .map(|item| tokio::spawn(work(item).in_current_span()))
        .buffer_unordered(limit.max(1))
        .filter_map(|joined| async move {
            joined
                .map_err(|e| tracing::error!(error = %e, "a collection task failed"))
                .ok()
        })
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_runs_at_most_limit_at_a_time_on_tasks_of_their_own() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let mut out = fan_out(0..64u32, 4, |i| {
            let (running, most, threads) = (running.clone(), most.clone(), threads.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                threads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(std::thread::current().id());
                // Busy, not sleeping: a worker thread stays occupied.
                let until = std::time::Instant::now() + std::time::Duration::from_millis(2);
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                if i == 7 {
                    panic!("one bad item");
                }
                i
            }
        })
        .await;
        out.sort_unstable();
        let expected: Vec<u32> = (0..64).filter(|i| *i != 7).collect();
        assert_eq!(
            out, expected,
            "every item but the panicked one has its output"
        );
        assert!(
            most.load(Ordering::SeqCst) <= 4,
            "never more than the limit"
        );
        let n = threads.lock().unwrap_or_else(|p| p.into_inner()).len();
        assert!(n >= 2, "the work ran on {n} worker thread(s)");
    }
}
