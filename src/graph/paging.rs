//! Cursor pagination, pulled one page at a time: newest page first, then
//! `after=<cursor>` built against the configured base URL. `paging.next` is
//! only read as "there is more"; it is never followed. An empty page that
//! still has a cursor is not the end; a cursor seen twice in one walk is a
//! loop and fails the walk; at most `max_pages` are fetched. A walk can go
//! on from a cursor an earlier walk handed out ([`Pager::resume`]): that is
//! how a sweep continues where the previous collection left it.

use std::collections::HashSet;
use std::future::Future;

use crate::error::GraphError;
use crate::graph::model::{Page, Paging, Record, Text};

/// What takes in a page of records `T` as fetched: with strings `String`
/// (a page built in memory) or borrowed from the response body.
pub trait PageVisitor<T: Record> {
    /// What it makes of a page.
    type Out: Send;

    /// Takes in `page`.
    fn visit<S: Text>(&mut self, page: &Page<T::With<S>>) -> Self::Out;
}

/// Where a walk's pages come from: the Graph API (an
/// `EdgeRequest` of the client), or a test's world.
pub trait PageSource<T> {
    /// Fetches the page after cursor `after` (the newest page when `None`).
    fn fetch(
        &mut self,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<T>, GraphError>> + Send;

    /// Fetches the page after `after` and hands it to `visitor`: returns
    /// what the visitor made of it and the page's [`Paging`]. The Graph API
    /// client hands over the page decoded with its strings borrowed from
    /// the response body, which is dropped after; this default, the
    /// [`PageSource::fetch`]ed page.
    fn fetch_into<V: PageVisitor<T> + Send>(
        &mut self,
        after: Option<&str>,
        visitor: &mut V,
    ) -> impl Future<Output = Result<(V::Out, Option<Paging>), GraphError>> + Send
    where
        T: Record,
        Self: Send,
    {
        async move {
            let page = self.fetch(after).await?;
            let out = visitor.visit::<String>(T::as_with(&page));
            Ok((out, page.paging))
        }
    }

    /// The walk failed for `error` without a request failing (a cursor
    /// loop), so the source can count it.
    fn walk_failed(&self, _error: &GraphError) {}
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The API had no further page.
    Exhausted,
    /// The caller stopped asking: it reached seen data or the lookback edge.
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

#[derive(Debug)]
enum Next {
    First,
    After(String),
    /// `max_pages` reached with this cursor still to go.
    Full(String),
    Done(End),
}

/// A walk over the pages of one source, newest first.
#[derive(Debug)]
pub struct Pager<S> {
    source: S,
    max_pages: u32,
    pages: u32,
    used: HashSet<String>,
    next: Next,
}

impl<S> Pager<S> {
    /// A walk of at most `max_pages` pages.
    pub fn new(source: S, max_pages: u32) -> Self {
        Pager {
            source,
            max_pages,
            pages: 0,
            used: HashSet::new(),
            next: Next::First,
        }
    }

    /// The next page, or `None` at the end of the data or at `max_pages`.
    pub async fn next_page<T>(&mut self) -> Result<Option<Page<T>>, GraphError>
    where
        S: PageSource<T>,
    {
        let Some(after) = self.next_after::<T>()? else {
            return Ok(None);
        };
        let page = self.source.fetch(after.as_deref()).await?;
        self.fetched(page.paging.as_ref());
        Ok(Some(page))
    }

    /// [`Pager::next_page`] handed to `visitor` (see
    /// [`PageSource::fetch_into`]): what it made of the next page, or `None`.
    pub async fn next_page_into<T, V>(
        &mut self,
        visitor: &mut V,
    ) -> Result<Option<V::Out>, GraphError>
    where
        T: Record,
        S: PageSource<T> + Send,
        V: PageVisitor<T> + Send,
    {
        let Some(after) = self.next_after::<T>()? else {
            return Ok(None);
        };
        let (out, paging) = self.source.fetch_into(after.as_deref(), visitor).await?;
        self.fetched(paging.as_ref());
        Ok(Some(out))
    }

    /// The cursor of the next fetch (`Some(None)`: the newest page), or
    /// `None` when the walk is over.
    #[allow(clippy::option_option)]
    fn next_after<T>(&mut self) -> Result<Option<Option<String>>, GraphError>
    where
        S: PageSource<T>,
    {
        Ok(match &self.next {
            Next::Done(_) | Next::Full(_) => None,
            Next::First => Some(None),
            Next::After(cursor) => {
                if self.pages >= self.max_pages {
                    self.next = Next::Full(cursor.clone());
                    return Ok(None);
                }
                if !self.used.insert(cursor.clone()) {
                    let e = GraphError::CursorLoop;
                    self.source.walk_failed(&e);
                    self.next = Next::Done(End::Stopped);
                    return Err(e);
                }
                Some(Some(cursor.clone()))
            }
        })
    }

    /// A page with `paging` was fetched.
    fn fetched(&mut self, paging: Option<&Paging>) {
        self.pages += 1;
        self.next = match next_cursor(paging) {
            Some(c) => Next::After(c.to_string()),
            None => Next::Done(End::Exhausted),
        };
    }

    /// Goes on from `cursor` (of an earlier page or walk) for at most `more`
    /// pages; cursors used before this are no loop.
    pub fn resume(&mut self, cursor: String, more: u32) {
        self.used.clear();
        self.max_pages = self.pages.saturating_add(more);
        self.next = Next::After(cursor);
    }

    /// The cursor of the page the walk would fetch next: after the last
    /// page fetched, or the one whose fetch failed. `None` at the end of
    /// the data or before the first page.
    pub fn cursor(&self) -> Option<&str> {
        match &self.next {
            Next::After(c) | Next::Full(c) => Some(c),
            _ => None,
        }
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// How the walk ended: as the pager saw it, or `Stopped` if the caller
    /// stopped asking while there was more.
    pub fn end(&self) -> End {
        match self.next {
            Next::Done(end) => end,
            Next::Full(_) => End::MaxPages,
            _ => End::Stopped,
        }
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

    /// Serves `pages` pages of nothing, each pointing at `cursor(n)`.
    struct Script {
        pages: u32,
        cursor: fn(u32) -> String,
        asked: Vec<Option<String>>,
    }

    impl PageSource<u8> for Script {
        async fn fetch(&mut self, after: Option<&str>) -> Result<Page<u8>, GraphError> {
            self.asked.push(after.map(String::from));
            let n = self.asked.len() as u32;
            let more = n < self.pages;
            Ok(Page {
                data: Vec::new(),
                paging: Some(paging(Some(&(self.cursor)(n)), more)),
                invalid: Vec::new(),
            })
        }
    }

    async fn walk(
        pages: u32,
        max: u32,
        cursor: fn(u32) -> String,
    ) -> (Vec<Option<String>>, Result<End, GraphError>) {
        let mut p = Pager::new(
            Script {
                pages,
                cursor,
                asked: Vec::new(),
            },
            max,
        );
        let result = loop {
            match p.next_page::<u8>().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(p.end()),
                Err(e) => break Err(e),
            }
        };
        (p.source.asked, result)
    }

    #[tokio::test]
    async fn follows_cursors_to_the_end_or_max_pages_and_refuses_loops() {
        let (asked, end) = walk(3, 10, |n| format!("c{n}")).await;
        assert_eq!(asked, vec![None, Some("c1".into()), Some("c2".into())]);
        assert_eq!(end, Ok(End::Exhausted));
        let (asked, end) = walk(5, 2, |n| format!("c{n}")).await;
        assert_eq!(asked.len(), 2);
        assert_eq!(end, Ok(End::MaxPages));
        let (asked, end) = walk(5, 10, |_| "same".into()).await;
        assert_eq!(asked.len(), 2);
        assert_eq!(end, Err(GraphError::CursorLoop));
    }

    #[tokio::test]
    async fn resumes_from_a_cursor_for_a_few_more_pages() {
        let mut p = Pager::new(
            Script {
                pages: 6,
                cursor: |n| format!("c{n}"),
                asked: Vec::new(),
            },
            1,
        );
        assert!(p.next_page::<u8>().await.unwrap().is_some());
        assert!(p.next_page::<u8>().await.unwrap().is_none());
        assert_eq!(p.end(), End::MaxPages);
        assert_eq!(p.cursor(), Some("c1"));
        // Two more pages from an older cursor (one the walk used is no loop).
        p.resume("c1".into(), 2);
        while p.next_page::<u8>().await.unwrap().is_some() {}
        assert_eq!(p.end(), End::MaxPages);
        assert_eq!(p.pages(), 3);
        assert_eq!(p.cursor(), Some("c3"));
        p.resume("c3".into(), 10);
        while p.next_page::<u8>().await.unwrap().is_some() {}
        assert_eq!(p.end(), End::Exhausted);
        assert_eq!(p.cursor(), None);
        assert_eq!(
            p.source.asked,
            [
                None,
                Some("c1"),
                Some("c2"),
                Some("c3"),
                Some("c4"),
                Some("c5")
            ]
            .map(|c| c.map(String::from))
        );
    }
}
