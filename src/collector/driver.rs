//! One collection driver for both collectors: pull pages from the pager,
//! scan each (what is new or changed, remembered in the seen-state), count
//! it, take the scan into the target's state, until the scan says stop or
//! the pager runs out ([`drive`]); then let the collector settle what it
//! derives from the whole state (gauges). A collector is the small
//! [`Collect`] trait: its edge, its fields, whether it sweeps, how to scan a
//! page, how to count, how to settle.
//!
//! [`run`] is one collection's walk: for a collector that does not sweep
//! (activities), one drive to seen data; for one that does (message_history,
//! see [`crate::collector::sweep`]), the baseline's whole window, or the head
//! and then the next pages of the sweep.

use crate::collector::sweep::{Reach, Step, Walked};
use crate::collector::target::{Phase, Scan, TargetState, Walk, widen};
use crate::error::GraphError;
use crate::graph::model::{Page, Record, Text};
use crate::graph::paging::PageVisitor;
use crate::graph::{Edge, End, PageSource, Pager};

/// What a collector knows: where its pages are and what to make of them.
pub trait Collect: Send + Sync {
    /// One record of a page.
    type Record: Record;
    /// What a scan finds to count: a new record, or an event inside one,
    /// new or changed.
    type Found<'p>;
    /// The edge it reads.
    const EDGE: Edge;
    /// `fields=` of its requests.
    const FIELDS: &'static str;
    /// New records can appear anywhere in the window, so it is read by a
    /// head and a rolling sweep rather than to seen data.
    const SWEEPS: bool = false;

    /// Finds the records of `page` not seen before (or changed) and
    /// remembers them; its strings are `S` (borrowed from the response body,
    /// or `String`).
    fn scan<'p, S: Text>(
        &self,
        page: &'p Page<<Self::Record as Record>::With<S>>,
        st: &mut TargetState,
        walk: &mut Walk,
    ) -> Scan<Self::Found<'p>>;

    /// Counts what a scan `found` for target `id` (with `counting` false, a
    /// baseline: their series are created at 0, nothing is counted).
    fn count(&self, id: &str, found: &[Self::Found<'_>], st: &mut TargetState, counting: bool);

    /// After a walk, however it ended: sets what is derived from the whole
    /// remembered state of target `id` (`now`: unix seconds).
    fn settle(&self, _id: &str, _st: &mut TargetState, _walk: &Walk, _now: i64) {}
}

/// Walks target `id`'s pages with `collector` until done. On error the
/// pages already taken in stay taken in.
pub async fn drive<C, S>(
    collector: &C,
    pager: &mut Pager<S>,
    id: &str,
    st: &mut TargetState,
    walk: &mut Walk,
) -> Result<End, GraphError>
where
    C: Collect,
    S: PageSource<C::Record> + Send,
{
    let mut take = TakeIn {
        collector,
        id,
        st,
        walk,
    };
    loop {
        match pager.next_page_into(&mut take).await? {
            None => return Ok(pager.end()),
            Some(true) => return Ok(End::Stopped),
            Some(false) => {}
        }
    }
}

/// Takes a page in: scans it, counts what the scan found, takes the scan
/// into the target's state and the walk. Says whether to stop.
struct TakeIn<'a, C> {
    collector: &'a C,
    id: &'a str,
    st: &'a mut TargetState,
    walk: &'a mut Walk,
}

impl<C: Collect> PageVisitor<C::Record> for TakeIn<'_, C> {
    type Out = bool;

    fn visit<S: Text>(&mut self, page: &Page<<C::Record as Record>::With<S>>) -> bool {
        let (st, walk) = (&mut *self.st, &mut *self.walk);
        let mut scan = self.collector.scan::<S>(page, st, walk);
        // Records the page decode left out count like records the scan skipped.
        scan.invalid.extend_from_slice(&page.invalid);
        self.collector
            .count(self.id, &scan.found, st, walk.counting);
        st.absorb(&scan);
        walk.at_edge |= scan.edge;
        if let Some((oldest, newest)) = scan.messages {
            walk.messages = widen(walk.messages, oldest, newest);
        }
        scan.stop
    }
}

/// One collection's walk of target `id` (see the module docs). The pager
/// starts at the newest page with `reach.max_pages` pages. On error, what
/// was read stays taken in and the sweep keeps the position it reached.
pub async fn run<C, S>(
    collector: &C,
    pager: &mut Pager<S>,
    id: &str,
    st: &mut TargetState,
    walk: &mut Walk,
    reach: &Reach,
) -> Result<Walked, GraphError>
where
    C: Collect,
    S: PageSource<C::Record> + Send,
{
    let now = reach.now as i64;
    if !C::SWEEPS {
        let end = drive(collector, pager, id, st, walk).await?;
        return Ok(Walked {
            step: Step::Walk,
            truncated: end == End::MaxPages,
            swept: None,
        });
    }
    st.sweep_moved = true;
    if !walk.counting {
        walk.enter(Phase::Whole);
        let end = drive(collector, pager, id, st, walk).await?;
        let truncated = end == End::MaxPages;
        let (oldest, newest) = walk.messages.unzip();
        st.sweep.baseline(newest, oldest, truncated, reach.now);
        return Ok(Walked {
            step: Step::Baseline,
            truncated,
            swept: None,
        });
    }
    walk.enter(Phase::Head);
    walk.head_from = st.sweep.head_from(now, reach.head_age);
    let head = drive(collector, pager, id, st, walk).await?;
    st.sweep.head_read(walk.messages.map(|m| m.1), now);
    let head_truncated = head == End::MaxPages;
    let behind = match pager.cursor() {
        Some(c) if !walk.at_edge && head != End::Exhausted => c.to_string(),
        // The head read the whole window.
        _ => {
            return Ok(Walked {
                step: Step::Covered,
                truncated: false,
                swept: st.sweep.complete(reach.now),
            });
        }
    };
    if head_truncated {
        // More new messages than one walk reads: the sweep goes on behind
        // them first (what it had left waits for the next sweep).
        st.sweep.cursor = None;
    }
    walk.enter(Phase::Sweep);
    let budget = |done: u32| {
        reach
            .sweep_pages
            .min(reach.max_pages.saturating_sub(done))
            .max(1)
    };
    let start = pager.pages();
    let saved = st.sweep.cursor.take();
    let resumed = saved.is_some();
    if !resumed {
        st.sweep.pages = 0;
    }
    pager.resume(
        saved.unwrap_or_else(|| behind.clone()),
        budget(st.sweep.pages),
    );
    let mut result = drive(collector, pager, id, st, walk).await;
    if resumed && pager.pages() == start && result.as_ref().is_err_and(refuses_cursor) {
        // A cursor kept from an earlier collection (or process) that the
        // API no longer takes: the sweep starts over behind the head.
        tracing::info!("the API refused the sweep's saved cursor; the sweep starts over");
        st.sweep.pages = 0;
        pager.resume(behind, budget(0));
        result = drive(collector, pager, id, st, walk).await;
    }
    st.sweep.pages = st.sweep.pages.saturating_add(pager.pages() - start);
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            st.sweep.cursor = pager.cursor().map(String::from);
            return Err(e);
        }
    };
    let step = match (end, pager.cursor()) {
        (End::MaxPages, Some(c)) if !walk.at_edge => {
            if st.sweep.pages < reach.max_pages {
                st.sweep.cursor = Some(c.to_string());
                Step::Continued
            } else {
                Step::Truncated
            }
        }
        _ => Step::Completed,
    };
    let swept = match step {
        Step::Continued => None,
        _ => st.sweep.complete(reach.now),
    };
    Ok(Walked {
        step,
        truncated: head_truncated || step == Step::Truncated,
        swept,
    })
}

/// Whether the API refused a request's parameters, as it refuses a cursor
/// it no longer knows (Graph code 100, or a bare HTTP 400).
fn refuses_cursor(e: &GraphError) -> bool {
    matches!(
        e,
        GraphError::Api { code: 100, .. } | GraphError::Http { status: 400 }
    )
}
