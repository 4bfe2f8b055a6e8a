//! How long the [`ProjectionSet`](crate::ProjectionSet) keeps a case that
//! has stopped changing (and with it every projection's record of it).
//!
//! Rejected, merged and withdrawn cases can never change again, so their
//! records are dropped at once. A closed case can still be reopened by a
//! district supervisor for `reopen_window_days` (the registry's policy), so
//! its record is kept until a *later event's* `recorded_at` is past that
//! window; measuring with recorded times instead of a clock keeps eviction
//! deterministic, so a rebuild evicts exactly what the live run evicted.
//! With this, memory grows with open cases and units, not with events.

use std::collections::BTreeSet;

use gridcase_engine::domain::DeadlinePolicy;
use gridcase_engine::time::{Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::casemap::CaseKey;

/// Slack after the reopen window before a closed case is evicted. The
/// engine checks the window against its own clock when it decides a reopen;
/// the log stamps the event a moment later, so an event of another case can
/// carry a time just past the window while the reopen is on its way.
pub(crate) const GRACE_MS: i64 = DAY_MS;

/// The queue of closed cases waiting for their reopen window to pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Retention {
    window_ms: i64,
    /// (closed at, case), oldest first.
    queue: BTreeSet<(Timestamp, CaseKey)>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { window_ms: window_ms(&DeadlinePolicy::default()), queue: BTreeSet::new() }
    }
}

fn window_ms(policy: &DeadlinePolicy) -> i64 {
    policy.reopen_window_days as i64 * DAY_MS
}

impl Retention {
    /// Takes the reopen window from a new policy.
    pub(crate) fn set_policy(&mut self, policy: &DeadlinePolicy) {
        self.window_ms = window_ms(policy);
    }

    /// A case was closed at `at`.
    pub(crate) fn closed(&mut self, key: &CaseKey, at: Timestamp) {
        self.queue.insert((at, key.clone()));
    }

    /// A closed case (closed at `at`) was reopened: it stays.
    pub(crate) fn reopened(&mut self, key: &CaseKey, at: Timestamp) {
        self.queue.remove(&(at, key.clone()));
    }

    /// Closed cases whose window has passed by `now` (a recorded time), removed from the queue.
    pub(crate) fn expired(&mut self, now: Timestamp) -> Vec<CaseKey> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if at.0.saturating_add(self.window_ms).saturating_add(GRACE_MS) >= now.0 {
                break;
            }
            if let Some((_, id)) = self.queue.pop_first() {
                out.push(id);
            }
        }
        out
    }

    /// Closed cases waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
