//! One collection driver for both collectors: pull pages from the pager,
//! scan each (what is new, remembered in the seen-state), count what is new,
//! take the scan into the target's state, until the scan says stop or the
//! pager runs out. A collector is the small [`Collect`] trait: its edge, its
//! fields, how to scan a page and how to count.

use serde::de::DeserializeOwned;

use crate::collector::target::{Scan, TargetState, Walk};
use crate::error::GraphError;
use crate::graph::model::Page;
use crate::graph::{Edge, End, PageSource, Pager};

/// What a collector knows: where its pages are and what to make of them.
pub trait Collect: Send + Sync {
    /// One record of a page.
    type Record: DeserializeOwned + Send + Sync;
    /// What a scan finds new: a record, or an event inside one.
    type Found;
    /// The edge it reads.
    const EDGE: Edge;
    /// `fields=` of its requests.
    const FIELDS: &'static str;

    /// Finds the records of `page` not seen before and remembers them.
    fn scan<'p>(
        &self,
        page: &'p Page<Self::Record>,
        st: &mut TargetState,
        walk: &mut Walk,
    ) -> Scan<'p, Self::Found>;

    /// Counts `new` records of target `id` (with `counting` false, a
    /// baseline: their series are created at 0, nothing is counted).
    fn count(&self, id: &str, new: &[&Self::Found], st: &mut TargetState, counting: bool);
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
        collector.count(id, &scan.new, st, walk.counting);
        st.absorb(&scan);
        if scan.stop {
            return Ok(End::Stopped);
        }
    }
}
