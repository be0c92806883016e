//! One collection driver for both collectors: pull pages from the pager,
//! scan each (what is new or changed, remembered in the seen-state), count
//! it, take the scan into the target's state, until the scan says stop or
//! the pager runs out; then let the collector settle what it derives from
//! the whole state (gauges). A collector is the small [`Collect`] trait: its
//! edge, its fields, how to scan a page, how to count, how to settle.

use serde::de::DeserializeOwned;

use crate::collector::target::{Scan, TargetState, Walk};
use crate::error::GraphError;
use crate::graph::model::Page;
use crate::graph::{Edge, End, PageSource, Pager};

/// What a collector knows: where its pages are and what to make of them.
pub trait Collect: Send + Sync {
    /// One record of a page.
    type Record: DeserializeOwned + Send + Sync;
    /// What a scan finds to count: a new record, or an event inside one,
    /// new or changed.
    type Found<'p>;
    /// The edge it reads.
    const EDGE: Edge;
    /// `fields=` of its requests.
    const FIELDS: &'static str;

    /// Finds the records of `page` not seen before (or changed) and remembers them.
    fn scan<'p>(
        &self,
        page: &'p Page<Self::Record>,
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
    S: PageSource<C::Record>,
{
    loop {
        let Some(page) = pager.next_page::<C::Record>().await? else {
            return Ok(pager.end());
        };
        let scan = collector.scan(&page, st, walk);
        collector.count(id, &scan.found, st, walk.counting);
        st.absorb(&scan);
        if scan.stop {
            return Ok(End::Stopped);
        }
    }
}
