//! The catch-up follower: reads the log from where the engine's open-case
//! view stands to the head, skipping ranges the engine appended itself, so
//! that the view is complete (other processes' commands included).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Engine, CASE_STREAM_PREFIX, PAGE};
use crate::domain::{Case, Event};
use crate::log::Position;
use crate::org::ORG_STREAM;
use crate::Error;

/// How far the engine has followed the log (for the complete view of open
/// cases that deadlines need).
pub(super) struct Follow {
    pub(super) position: Position,
    /// Whether the store's checkpoint has been looked at: lazily, on the
    /// first catch-up, so commands that never need the whole open-case view
    /// (showing a case) do not decode it.
    pub(super) checkpoint_checked: bool,
    /// The position of the checkpoint the view started from, if one was used.
    pub(super) restored_from: Option<Position>,
}

impl Engine {
    /// Follows the log up to its head so that the open-case view is complete
    /// (changes by other processes included). Returns the position reached.
    ///
    /// Cancellation-safe: the position advances only past records already
    /// folded in, and folding a record twice is a no-op, so a dropped
    /// catch-up is resumed by the next.
    pub async fn catch_up(&self) -> Result<Position, Error> {
        let mut follow = self.follow.lock().await;
        self.catch_up_locked(&mut follow).await
    }

    pub(super) async fn catch_up_locked(&self, follow: &mut Follow) -> Result<Position, Error> {
        if !follow.checkpoint_checked {
            follow.checkpoint_checked = true;
            match self.restore_checkpoint(follow).await {
                Ok(p) => follow.restored_from = Some(p),
                // Derived state: without it the engine reads the log instead.
                Err(reason) => tracing::info!(
                    %reason,
                    "engine checkpoint not used; following the log from the start"
                ),
            }
        }
        let head = self.log.head().position;
        while follow.position < head {
            let next_own =
                self.open.lock().unwrap_or_else(|p| p.into_inner()).skip_own(&mut follow.position);
            if follow.position >= head {
                break;
            }
            let limit = match next_own {
                Some(first) => ((first - follow.position - 1) as usize).min(PAGE),
                None => PAGE,
            };
            let page = self.log.read_all(follow.position + 1, limit).await?;
            let Some(last) = page.last() else { break };
            let last_pos = last.position;
            for rec in &page {
                self.note_recorded(rec.recorded_at);
                let Some(id) = rec.stream.strip_prefix(CASE_STREAM_PREFIX) else {
                    if rec.stream == ORG_STREAM {
                        // Flagged before any await, so a cancelled catch-up
                        // still leaves the registry to be re-read.
                        self.registry_stale.store(true, Ordering::SeqCst);
                    }
                    continue;
                };
                let known = self
                    .open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .cases
                    .get(id)
                    .map(|c| c.version);
                match known {
                    Some(v) if rec.version <= v => {}
                    Some(v) if rec.version == v + 1 => {
                        let ev = Event::from_recorded(rec).map_err(|e| Error::Corruption {
                            position: rec.position,
                            reason: e.0,
                        })?;
                        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(c) = open.take(id) {
                            let mut c = Arc::unwrap_or_clone(c);
                            c.apply(&ev, rec.recorded_at);
                            open.put(Arc::new(c));
                        }
                    }
                    _ if rec.version == 1 => {
                        let ev = Event::from_recorded(rec).map_err(|e| Error::Corruption {
                            position: rec.position,
                            reason: e.0,
                        })?;
                        if let Some(c) = Case::start(&ev, &rec.actor, rec.recorded_at) {
                            self.open.lock().unwrap_or_else(|p| p.into_inner()).put(Arc::new(c));
                        }
                    }
                    _ => {
                        // A case not in memory (closed and evicted, or changed
                        // elsewhere): take its whole current state from its stream.
                        let c = self.load_from_log(id).await?;
                        self.open.lock().unwrap_or_else(|p| p.into_inner()).put(Arc::new(c));
                    }
                }
            }
            follow.position = last_pos;
        }
        self.refresh_registry_if_stale().await?;
        Ok(follow.position)
    }
}
