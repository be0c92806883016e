//! Cursor pagination: newest page first, then `after=<cursor>` built against
//! the configured base URL. `paging.next` is only read as "there is more";
//! it is never followed. An empty page that still has a cursor is not the
//! end; a cursor seen twice in one walk is a loop and fails the walk.

use std::collections::HashSet;

use serde::de::DeserializeOwned;

use crate::error::GraphError;
use crate::graph::model::{Page, Paging};
use crate::graph::{GraphClient, PageRequest};

/// What the page callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Fetch the next page if there is one.
    Continue,
    /// Enough: the scan reached seen data or the lookback edge.
    Stop,
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The API had no further page.
    Exhausted,
    /// The callback stopped it.
    Stopped,
    /// `max_pages` reached while more was wanted and available: truncated.
    MaxPages,
}

/// The cursor of the next page, or `None` at the end of the data.
pub fn next_cursor(paging: Option<&Paging>) -> Option<&str> {
    let paging = paging?;
    paging.next.as_ref()?;
    paging
        .cursors
        .as_ref()?
        .after
        .as_deref()
        .filter(|c| !c.is_empty())
}

/// Walks pages from the newest, calling `on_page` for each, at most `max_pages`.
///
/// Returns the number of pages fetched and how the walk ended; on error the
/// pages already handed to `on_page` stay handled.
pub async fn walk<T: DeserializeOwned>(
    client: &GraphClient,
    first: PageRequest<'_>,
    max_pages: u32,
    mut on_page: impl FnMut(&Page<T>) -> Flow,
) -> (u32, Result<End, GraphError>) {
    let mut used: HashSet<String> = HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let req = PageRequest {
            after: after.as_deref(),
            ..first
        };
        let page = match client.get_page::<T>(req).await {
            Ok(p) => p,
            Err(e) => return (pages, Err(e)),
        };
        pages += 1;
        if on_page(&page) == Flow::Stop {
            return (pages, Ok(End::Stopped));
        }
        let Some(cursor) = next_cursor(page.paging.as_ref()) else {
            return (pages, Ok(End::Exhausted));
        };
        if pages >= max_pages {
            return (pages, Ok(End::MaxPages));
        }
        if !used.insert(cursor.to_string()) {
            let e = GraphError::CursorLoop;
            client.record_error(first.endpoint, &e);
            return (pages, Err(e));
        }
        after = Some(cursor.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::Cursors;

    fn paging(after: Option<&str>, next: bool) -> Paging {
        Paging {
            cursors: Some(Cursors {
                after: after.map(String::from),
                before: None,
            }),
            next: next.then(|| "https://elsewhere.example/steal".to_string()),
        }
    }

    #[test]
    fn end_of_data_rules() {
        assert_eq!(next_cursor(None), None);
        assert_eq!(next_cursor(Some(&paging(Some("a+/="), true))), Some("a+/="));
        // Graph's convention: no `next` means last page, even with cursors.
        assert_eq!(next_cursor(Some(&paging(Some("a"), false))), None);
        assert_eq!(next_cursor(Some(&paging(None, true))), None);
        assert_eq!(next_cursor(Some(&paging(Some(""), true))), None);
    }
}
