//! The engine's in-memory view of open cases: each open case's latest
//! state, their next deadlines in time order, and the position ranges the
//! engine appended itself (so catch-up need not read its own writes back).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::domain::Case;
use crate::log::{AppendOutcome, Position};
use crate::time::Timestamp;

/// Open cases by id, and their next deadlines in time order.
#[derive(Default)]
pub(super) struct OpenCases {
    pub(super) cases: HashMap<String, Arc<Case>>,
    pub(super) deadlines: BTreeSet<(Timestamp, String)>,
    /// The final version of recently finished cases: a command whose
    /// acknowledgement arrives after a later command's must not resurrect a
    /// case the later one closed. (For open cases the entry in `cases`
    /// carries the newest version.) Bounded: a late acknowledgement comes
    /// within moments, and a resurrection past the bound heals itself: the
    /// next command on it conflicts with the log and reloads the case.
    finished: HashMap<String, u64>,
    /// Ids in `finished`, oldest first, to forget beyond [`MAX_FINISHED`].
    finished_order: VecDeque<String>,
    /// Position ranges (first → last) this engine appended and has already
    /// folded into `cases`: catch-up skips them instead of reading back its
    /// own writes, which otherwise costs a decode per event on every tick.
    own: BTreeMap<Position, Position>,
}

/// Past this many remembered ranges the oldest are forgotten; forgetting is
/// safe, it only makes catch-up read those positions.
const MAX_OWN_RANGES: usize = 1 << 20;

/// Finished cases remembered against late acknowledgements.
const MAX_FINISHED: usize = 1 << 16;

impl OpenCases {
    /// Notes that `outcome`'s positions are already reflected here.
    pub(super) fn note_own(&mut self, outcome: &AppendOutcome) {
        if self.own.len() >= MAX_OWN_RANGES {
            self.own.pop_first();
        }
        self.own.insert(outcome.first_position, outcome.last_position);
    }

    /// Moves `position` past every own range that starts right after it,
    /// drops ranges already passed, and returns where the next own range
    /// starts (reads should stop before it).
    pub(super) fn skip_own(&mut self, position: &mut Position) -> Option<Position> {
        loop {
            let (&first, &last) = self.own.first_key_value()?;
            if last <= *position {
                self.own.pop_first();
            } else if first == *position + 1 {
                *position = last;
                self.own.pop_first();
            } else if first <= *position {
                // Partly passed (cannot happen with whole appends); read it.
                self.own.pop_first();
            } else {
                return Some(first);
            }
        }
    }

    /// Takes a case out to change it (without a copy when nothing else
    /// shares it); [`OpenCases::put`] puts the new state back.
    pub(super) fn take(&mut self, id: &str) -> Option<Arc<Case>> {
        let case = self.cases.remove(id)?;
        if let Some(d) = case.next_deadline() {
            self.deadlines.remove(&(d, case.id.clone()));
        }
        Some(case)
    }

    /// Stores a case's newer state (an older one than already seen is
    /// ignored); a finished case leaves the view.
    pub(super) fn put(&mut self, case: Arc<Case>) {
        if let Some(current) = self.cases.get(&case.id) {
            if case.version < current.version {
                return;
            }
        } else if self.finished.get(&case.id).is_some_and(|&v| case.version < v) {
            return;
        }
        self.remove_entry(&case.id);
        if case.is_open() {
            if let Some(d) = case.next_deadline() {
                self.deadlines.insert((d, case.id.clone()));
            }
            self.cases.insert(case.id.clone(), case);
        } else {
            if self.finished.insert(case.id.clone(), case.version).is_none() {
                self.finished_order.push_back(case.id.clone());
            }
            while self.finished_order.len() > MAX_FINISHED {
                if let Some(old) = self.finished_order.pop_front() {
                    self.finished.remove(&old);
                }
            }
        }
    }

    /// Forgets a case so that the next load reads it from the log.
    ///
    /// It also forgets which positions were this engine's own: after a
    /// forget, a slower command of the same case may still install its
    /// older state into the now empty slot (`put` has nothing newer to
    /// compare with), and catch-up must then read the newer own writes back
    /// instead of skipping them, or the view stays behind the log for good.
    /// (Seen as a flaky "live state == history + fold" under load.) Forgets
    /// happen only on a conflict or a cancelled command, so the cost is a
    /// few records read back now and then.
    pub(super) fn remove(&mut self, id: &str) {
        self.finished.remove(id);
        self.remove_entry(id);
        self.own.clear();
    }

    fn remove_entry(&mut self, id: &str) {
        if let Some(old) = self.cases.remove(id) {
            if let Some(d) = old.next_deadline() {
                self.deadlines.remove(&(d, old.id.clone()));
            }
        }
    }
}
