//! Lazy pagination: a [`Stream`] of items built from "fetch the page at this cursor".
//!
//! The stream fetches a page only when the previous one is consumed, and ends:
//! - when a page has no next cursor (the last page; also an empty page with no cursor);
//! - with a [`RepeatedCursor`] error when the API hands back a cursor it already gave (instead of looping forever
//!   or stopping silently);
//! - after the first error (which is yielded; nothing is fetched after it).
//!
//! Cursors are anything `Clone + Eq + Hash`: an Airtable `offset` string, a Calendly `page_token`, a page number
//! for Kommo and Productive.

use std::{collections::HashSet, fmt::Debug, future::Future, hash::Hash};

use futures::{Stream, StreamExt, stream};

/// One page: its items and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The last page.
    #[must_use]
    pub fn last(items: Vec<T>) -> Self {
        Self { items, next: None }
    }
}

/// The API returned a cursor it had already returned: following it would loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pagination cursor {cursor} was returned twice; stopping instead of looping")]
pub struct RepeatedCursor {
    /// The cursor, as `Debug` text.
    pub cursor: String,
}

struct State<C, F> {
    fetch: F,
    cursor: Option<C>,
    seen: HashSet<C>,
    done: bool,
}

/// Builds the lazy stream. `fetch(None)` fetches the first page (or `fetch(first)` when a starting cursor is given).
pub fn paginate<T, C, E, F, Fut>(first: Option<C>, fetch: F) -> impl Stream<Item = Result<T, E>>
where
    C: Clone + Eq + Hash + Debug,
    E: From<RepeatedCursor>,
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    let mut seen = HashSet::new();
    if let Some(c) = &first {
        seen.insert(c.clone());
    }
    let state = State { fetch, cursor: first, seen, done: false };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let page = match (st.fetch)(st.cursor.take()).await {
            Ok(p) => p,
            Err(e) => {
                st.done = true;
                return Some((vec![Err(e)], st));
            }
        };
        let mut out: Vec<Result<T, E>> = page.items.into_iter().map(Ok).collect();
        match page.next {
            None => st.done = true,
            Some(next) => {
                if st.seen.insert(next.clone()) {
                    st.cursor = Some(next);
                } else {
                    st.done = true;
                    out.push(Err(E::from(RepeatedCursor { cursor: format!("{next:?}") })));
                }
            }
        }
        Some((out, st))
    })
    .flat_map(stream::iter)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use futures::TryStreamExt;

    use super::*;

    #[derive(Debug, PartialEq)]
    enum Err {
        Api(&'static str),
        Loop(String),
    }
    impl From<RepeatedCursor> for Err {
        fn from(r: RepeatedCursor) -> Self {
            Self::Loop(r.cursor)
        }
    }

    #[tokio::test]
    async fn follows_cursors_until_missing() {
        let s = paginate(None, |c: Option<u32>| async move {
            let n = c.unwrap_or(1);
            Ok::<_, Err>(Page { items: vec![n * 10, n * 10 + 1], next: (n < 3).then_some(n + 1) })
        });
        let all: Vec<u32> = s.try_collect().await.unwrap();
        assert_eq!(all, vec![10, 11, 20, 21, 30, 31]);
    }

    #[tokio::test]
    async fn empty_last_page() {
        let s = paginate(None, |_c: Option<String>| async { Ok::<_, Err>(Page::<u8, String>::last(vec![])) });
        let all: Vec<u8> = s.try_collect().await.unwrap();
        assert!(all.is_empty());
    }

    #[tokio::test]
    async fn repeated_cursor_is_an_error_not_a_loop() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let s = paginate(None, move |_c: Option<String>| {
            c2.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Err>(Page { items: vec![1], next: Some("itr/abc".to_owned()) }) }
        });
        let all: Vec<Result<u8, Err>> = s.collect().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], Err(Err::Loop("\"itr/abc\"".into())));
    }

    #[tokio::test]
    async fn stops_after_first_error() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let s = paginate(None, move |c: Option<u32>| {
            c2.fetch_add(1, Ordering::SeqCst);
            async move {
                match c {
                    None => Ok(Page { items: vec![1], next: Some(2) }),
                    Some(_) => Err(Err::Api("boom")),
                }
            }
        });
        let all: Vec<Result<u32, Err>> = s.collect().await;
        assert_eq!(all, vec![Ok(1), Err(Err::Api("boom"))]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn lazy_fetches_only_what_is_consumed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let s = paginate(None, move |c: Option<u32>| {
            c2.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Err>(Page { items: vec![c.unwrap_or(0)], next: Some(c.unwrap_or(0) + 1) }) }
        });
        let first: Vec<Result<u32, Err>> = s.take(2).collect().await;
        assert_eq!(first, vec![Ok(0), Ok(1)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
