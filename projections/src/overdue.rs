//! Overdue and SLA: open cases past or near their resolution limit, grouped
//! by the unit holding them, at a time the caller gives.
//!
//! "Near" follows the registry's policy: a case is near its limit once
//! `near_due_percent` of its time has passed, measured from its submission
//! (or its last reopen, which starts a new limit: [`Case::limit_started_at`])
//! to its resolution deadline as extended. Departments that have not
//! claimed a dispatch by its claim deadline are counted too. The state is
//! the policy's share alone: the cases are the
//! [`ProjectionSet`](crate::ProjectionSet)'s live cases, read by
//! [`Overdue::report`] with the `now` of the question.

use std::collections::BTreeMap;

use gridcase_engine::domain::{Case, Event, Level, Priority};
use gridcase_engine::log::RecordView;
use gridcase_engine::org::Registry;
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::projection::Projection;
use crate::set::LiveCases;

/// The SLA projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overdue {
    /// The policy's near-due share, in percent (from the last `PolicySet`).
    near_due_percent: u8,
}

impl Default for Overdue {
    fn default() -> Self {
        Overdue {
            near_due_percent: gridcase_engine::domain::DeadlinePolicy::default().near_due_percent,
        }
    }
}

impl Projection for Overdue {
    const NAME: &'static str = "overdue";

    fn apply(&mut self, _: &RecordView<'_>, event: &Event, _: Option<&Case>, _: Option<&Case>) {
        if let Event::PolicySet { policy } = event {
            self.near_due_percent = policy.near_due_percent;
        }
    }
}

/// Where an open case stands against its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// Past its resolution deadline.
    Overdue,
    /// Past `near_due_percent` of its time.
    NearDue,
}

/// One case in an SLA list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaItem {
    /// Case id.
    pub case_id: String,
    /// Overdue or near due.
    pub state: SlaState,
    /// Resolution deadline.
    pub resolution_due: Timestamp,
    /// `now - resolution_due` in ms (negative: time left).
    pub overdue_by_ms: i64,
    /// Share of the limit elapsed, in percent.
    pub elapsed_percent: f64,
    /// Category code.
    pub category: String,
    /// Priority.
    pub priority: Priority,
    /// Grid of the case.
    pub grid: String,
}

/// The SLA position of one holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HolderSla {
    /// Unit code.
    pub unit: String,
    /// Unit name.
    pub name: String,
    /// Level it holds at.
    pub level: Level,
    /// Open cases held.
    pub open: u64,
    /// Of those, past their deadline.
    pub overdue: u64,
    /// Of those, near it.
    pub near_due: u64,
    /// Dispatches not claimed by their claim deadline (departments).
    pub unclaimed_past_due: u64,
    /// The overdue and near-due cases, most overdue first.
    pub cases: Vec<SlaItem>,
}

/// Open cases past or near their limit at `now`, by holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverdueReport {
    /// The time of the question.
    pub now: Timestamp,
    /// The policy's near-due share, in percent.
    pub near_due_percent: u8,
    /// Holders with at least one open case, most overdue first.
    pub holders: Vec<HolderSla>,
    /// Open cases past their deadline.
    pub overdue: u64,
    /// Open cases near it.
    pub near_due: u64,
}

impl Overdue {
    /// The SLA position at `now` of the set's live cases `cases`, with unit
    /// names from `registry`; with `unit`, of that unit's cases only
    /// ([`Case::concerns`]), the headline counts and the holder rows alike.
    pub fn report(
        &self,
        now: Timestamp,
        registry: &Registry,
        cases: &LiveCases,
        unit: Option<&str>,
    ) -> OverdueReport {
        let pct = self.near_due_percent as i128;
        let mut holders: BTreeMap<String, HolderSla> = BTreeMap::new();
        let (mut overdue, mut near) = (0, 0);
        // In id order: a holder's level is taken from its first case.
        for (key, t) in cases.sorted() {
            if !t.is_in_progress() || unit.is_some_and(|u| !t.concerns(registry, u)) {
                continue;
            }
            let window_start = t.limit_started_at();
            // In i128: no `now` a caller can give overflows the difference.
            let span = (t.resolution_due.0 as i128 - window_start.0 as i128).max(1);
            let elapsed = now.0 as i128 - window_start.0 as i128;
            let state = if now > t.resolution_due {
                Some(SlaState::Overdue)
            } else if elapsed * 100 >= pct * span {
                Some(SlaState::NearDue)
            } else {
                None
            };
            match state {
                Some(SlaState::Overdue) => overdue += 1,
                Some(SlaState::NearDue) => near += 1,
                None => {}
            }
            for h in t.working_holders() {
                let row = holders.entry(h.unit.clone()).or_insert_with(|| HolderSla {
                    unit: h.unit.clone(),
                    name: registry.name_of(&h.unit).to_string(),
                    level: t.level,
                    open: 0,
                    overdue: 0,
                    near_due: 0,
                    unclaimed_past_due: 0,
                    cases: Vec::new(),
                });
                row.open += 1;
                if !h.claimed && h.claim_due.is_some_and(|d| d < now) {
                    row.unclaimed_past_due += 1;
                }
                if let Some(state) = state {
                    match state {
                        SlaState::Overdue => row.overdue += 1,
                        SlaState::NearDue => row.near_due += 1,
                    }
                    row.cases.push(SlaItem {
                        case_id: key.id(),
                        state,
                        resolution_due: t.resolution_due,
                        overdue_by_ms: now.0.saturating_sub(t.resolution_due.0),
                        elapsed_percent: 100.0 * elapsed as f64 / span as f64,
                        category: t.category.clone(),
                        priority: t.priority,
                        grid: t.grid.clone(),
                    });
                }
            }
        }
        let mut holders: Vec<HolderSla> = holders.into_values().collect();
        for h in &mut holders {
            h.cases.sort_by(|a, b| {
                b.overdue_by_ms.cmp(&a.overdue_by_ms).then_with(|| a.case_id.cmp(&b.case_id))
            });
        }
        holders.sort_by(|a, b| {
            b.overdue
                .cmp(&a.overdue)
                .then_with(|| b.near_due.cmp(&a.near_due))
                .then_with(|| a.unit.cmp(&b.unit))
        });
        OverdueReport {
            now,
            near_due_percent: self.near_due_percent,
            holders,
            overdue,
            near_due: near,
        }
    }
}
