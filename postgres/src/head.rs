//! The committed head as this process knows it: moved by the writer after
//! its own commits and by the follower after other processes' commits, read
//! by the log. Its own module so that the writer, the follower and the log
//! all depend on it and not on each other.

use std::sync::Mutex;

use gridcase_engine::log::{LogHead, Position};
use tokio::sync::watch;

/// The committed head as this process knows it, and its watch. Both the
/// writer (after its own commits) and the follower (after other processes'
/// commits) move it, only ever forward.
pub(crate) struct HeadCell {
    head: Mutex<LogHead>,
    tx: watch::Sender<Position>,
}

impl HeadCell {
    /// A cell at `head`.
    pub(crate) fn new(head: LogHead) -> HeadCell {
        let (tx, _) = watch::channel(head.position);
        HeadCell { head: Mutex::new(head), tx }
    }

    /// The head as this process knows it now.
    pub(crate) fn get(&self) -> LogHead {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the head to `head` if that is further. The watch is sent while
    /// the mutex is held so the two never disagree on the order of updates.
    pub(crate) fn advance(&self, head: LogHead) {
        let mut current = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if head.position > current.position {
            *current = head;
            self.tx.send_replace(head.position);
        }
    }

    /// A receiver of the head position as it moves.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Position> {
        self.tx.subscribe()
    }
}
