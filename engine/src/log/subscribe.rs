//! Catch-up-then-live subscriptions, written once for every backend.
//!
//! A subscriber remembers the next position it owes its consumer, reads
//! committed records in pages from the log, and when it has caught up waits
//! on the log's head watch. Writers never wait for subscribers (a watch send
//! never blocks, unlike sled's `watch_prefix`, sled #1162), and because the
//! subscriber always resumes from its own next position, the hand-over from
//! catch-up to live cannot skip or repeat a record.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use super::{EventLog, Position, RecordedEvent};
use crate::log::LogError;

const PAGE: usize = 1024;

/// All records from `from` on, then every new one as it is committed.
/// The stream ends only on an error (after yielding it).
pub fn subscribe(
    log: Arc<dyn EventLog>,
    from: Position,
) -> BoxStream<'static, Result<RecordedEvent, LogError>> {
    let head = log.watch_head();
    let state = (log, head, from.max(1), VecDeque::<RecordedEvent>::new(), false);
    stream::unfold(state, |(log, mut head, mut next, mut buf, failed)| async move {
        if failed {
            return None;
        }
        loop {
            if let Some(ev) = buf.pop_front() {
                return Some((Ok(ev), (log, head, next, buf, false)));
            }
            // Mark the current head as seen before reading, so a commit that
            // lands during the read wakes the wait below.
            head.borrow_and_update();
            match log.read_all(next, PAGE).await {
                Ok(page) if !page.is_empty() => {
                    next = page.last().map(|e| e.position + 1).unwrap_or(next);
                    buf.extend(page);
                    continue;
                }
                Ok(_) => {
                    if head.changed().await.is_err() {
                        return None;
                    }
                }
                Err(e) => return Some((Err(e), (log, head, next, buf, true))),
            }
        }
    })
    .boxed()
}

/// Every committed record from `from` up to the head as it stands now, in pages.
pub fn read_all_stream(
    log: Arc<dyn EventLog>,
    from: Position,
) -> BoxStream<'static, Result<RecordedEvent, LogError>> {
    let upto = log.head().position;
    stream::unfold((log, from.max(1), false), move |(log, next, done)| async move {
        if done || next > upto {
            return None;
        }
        match log.read_all(next, PAGE).await {
            Ok(page) => {
                let page: Vec<_> = page.into_iter().filter(|e| e.position <= upto).collect();
                match page.last() {
                    Some(last) => {
                        let n = last.position + 1;
                        Some((stream::iter(page.into_iter().map(Ok)).boxed(), (log, n, false)))
                    }
                    None => None,
                }
            }
            Err(e) => Some((stream::iter(vec![Err(e)]).boxed(), (log, next, true))),
        }
    })
    .flatten()
    .boxed()
}
