//! The grid backlog: what is open in each grid, rolled up to community,
//! street and district, and how much was solved without leaving the grid.
//!
//! "Needs are collected in the grid, resources are pooled in the grid,
//! problems are solved in the grid." The state keeps one small record per
//! case that can still change (see `retention`) and a counter of resolved
//! cases per grid; everything that depends on the time of the question
//! (aging, overdue) is computed by [`Backlog::report`] from its `now`.
//!
//! Definitions:
//! - *open*: submitted, assigned, escalated or dispatched (being worked on);
//!   resolved cases waiting for callback or closure are counted apart as
//!   *awaiting callback*.
//! - *age*: `now - submitted_at`, in buckets <1 day, 1–3, 3–7, 7–15, >15 days.
//! - *overdue*: open with `resolution_due < now` (the deadline as extended
//!   or as reset by a reopen).
//! - *solved in the grid*: among resolved cases (resolved or closed, last
//!   callback not "not solved"), those that never went above the community.
//!
//! A case counts where it was submitted (its grid, and that grid's community
//! and street at submission), even if the grid later moves.

use std::collections::BTreeMap;

use gridcase_engine::domain::{Event, Priority};
use gridcase_engine::log::RecordedEvent;
use gridcase_engine::org::{Registry, UnitKind};
use gridcase_engine::time::{Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::casemap::CaseMap;
use crate::projection::Projection;
use crate::retention::Retention;
use crate::track::{case_id, CaseKey, Track};

/// Where a case was submitted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GridKey {
    /// Street code.
    pub street: String,
    /// Community code.
    pub community: String,
    /// Grid code.
    pub grid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BacklogCase {
    at: GridKey,
    category: String,
    priority: Priority,
    track: Track,
}

impl BacklogCase {
    /// (resolved, solved in the grid) as counted now.
    fn solved(&self) -> (bool, bool) {
        let resolved = self.track.resolved_now();
        (resolved, resolved && !self.track.left_community)
    }
}

/// Resolved cases of a grid and how many of them never left the community.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solved {
    /// Resolved cases.
    pub resolved: u64,
    /// Of those, never escalated above the community.
    pub in_grid: u64,
}

impl Solved {
    fn add(&mut self, (resolved, in_grid): (bool, bool), sign: i64) {
        self.resolved = self.resolved.wrapping_add_signed(sign * i64::from(resolved));
        self.in_grid = self.in_grid.wrapping_add_signed(sign * i64::from(in_grid));
    }
}

/// The backlog projection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    cases: CaseMap<BacklogCase>,
    solved: BTreeMap<GridKey, Solved>,
    retention: Retention,
    /// Case events for a case this projection does not know (evicted after its reopen window).
    stray_events: u64,
}

impl Projection for Backlog {
    const NAME: &'static str = "backlog";

    fn apply(&mut self, rec: &RecordedEvent, event: &Event) {
        for id in self.retention.expired(rec.recorded_at) {
            self.cases.remove(&CaseKey::new(&id));
        }
        if let Event::PolicySet { policy } = event {
            self.retention.set_policy(policy);
            return;
        }
        let Some(id) = case_id(&rec.stream) else { return };
        if let Event::CaseSubmitted {
            grid,
            community,
            street,
            category,
            priority,
            response_due,
            resolution_due,
            ..
        } = event
        {
            self.cases.entry(CaseKey::new(id)).or_insert_with(|| BacklogCase {
                at: GridKey {
                    street: street.clone(),
                    community: community.clone(),
                    grid: grid.clone(),
                },
                category: category.clone(),
                priority: *priority,
                track: Track::start(rec.recorded_at, community, *response_due, *resolution_due),
            });
            return;
        }
        let key = CaseKey::new(id);
        let Some(case) = self.cases.get_mut(&key) else {
            self.stray_events += 1;
            return;
        };
        let before = case.solved();
        let closed_before = case.track.closed_at;
        case.track.apply(event, rec.recorded_at, &case.at.street);
        let after = case.solved();
        if before != after {
            // Look up before cloning the key: most changes hit a known grid.
            if !self.solved.contains_key(&case.at) {
                self.solved.insert(case.at.clone(), Solved::default());
            }
            if let Some(s) = self.solved.get_mut(&case.at) {
                s.add(before, -1);
                s.add(after, 1);
            }
        }
        match event {
            Event::CaseClosed { .. } => self.retention.closed(id, rec.recorded_at),
            Event::CaseReopened { .. } => {
                if let Some(at) = closed_before {
                    self.retention.reopened(id, at);
                }
            }
            _ => {}
        }
        if case.track.ended_for_good() {
            self.cases.remove(&key);
        }
    }
}

/// Cases by age at the time of the question.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aging {
    /// Younger than one day.
    pub under_1_day: u64,
    /// One to three days.
    pub days_1_to_3: u64,
    /// Three to seven days.
    pub days_3_to_7: u64,
    /// Seven to fifteen days.
    pub days_7_to_15: u64,
    /// Older than fifteen days.
    pub over_15_days: u64,
}

impl Aging {
    fn count(&mut self, age_ms: i64) {
        let days = age_ms.max(0) / DAY_MS;
        let slot = match days {
            0 => &mut self.under_1_day,
            1..=2 => &mut self.days_1_to_3,
            3..=6 => &mut self.days_3_to_7,
            7..=14 => &mut self.days_7_to_15,
            _ => &mut self.over_15_days,
        };
        *slot += 1;
    }

    fn merge(&mut self, o: &Aging) {
        self.under_1_day += o.under_1_day;
        self.days_1_to_3 += o.days_1_to_3;
        self.days_3_to_7 += o.days_3_to_7;
        self.days_7_to_15 += o.days_7_to_15;
        self.over_15_days += o.over_15_days;
    }
}

/// The backlog of one unit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BacklogRow {
    /// Unit kind (grid, community, street, district).
    pub kind: Option<UnitKind>,
    /// Unit code.
    pub code: String,
    /// Unit name (the code when the registry does not know it).
    pub name: String,
    /// Open cases (being worked on).
    pub open: u64,
    /// Resolved, waiting for callback or closure.
    pub awaiting_callback: u64,
    /// Open cases past their resolution deadline.
    pub overdue: u64,
    /// Open cases by age.
    pub aging: Aging,
    /// Open cases by priority.
    pub by_priority: BTreeMap<Priority, u64>,
    /// Open cases by category code.
    pub by_category: BTreeMap<String, u64>,
    /// Resolved cases (resolved or closed, not called back as unsolved).
    pub resolved: u64,
    /// Of those, never escalated above the community.
    pub solved_in_grid: u64,
    /// `solved_in_grid / resolved` in percent; `None` with no resolved case.
    pub solved_in_grid_percent: Option<f64>,
}

impl BacklogRow {
    fn merge(&mut self, o: &BacklogRow) {
        self.open += o.open;
        self.awaiting_callback += o.awaiting_callback;
        self.overdue += o.overdue;
        self.aging.merge(&o.aging);
        for (p, n) in &o.by_priority {
            *self.by_priority.entry(*p).or_default() += n;
        }
        for (c, n) in &o.by_category {
            *self.by_category.entry(c.clone()).or_default() += n;
        }
        self.resolved += o.resolved;
        self.solved_in_grid += o.solved_in_grid;
    }

    fn finish(&mut self, kind: UnitKind, code: &str, registry: &Registry) {
        self.kind = Some(kind);
        self.code = code.to_string();
        self.name = registry.name_of(code).to_string();
        self.solved_in_grid_percent =
            (self.resolved > 0).then(|| 100.0 * self.solved_in_grid as f64 / self.resolved as f64);
    }
}

/// The backlog at one moment, per grid and rolled up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BacklogReport {
    /// The time of the question.
    pub now: Timestamp,
    /// Every grid (of the registry, or seen in a case), by code.
    pub grids: Vec<BacklogRow>,
    /// Every community.
    pub communities: Vec<BacklogRow>,
    /// Every street.
    pub streets: Vec<BacklogRow>,
    /// The district.
    pub district: BacklogRow,
}

impl Backlog {
    /// Records kept (open cases and closed ones inside their reopen window).
    pub fn tracked_cases(&self) -> usize {
        self.cases.len()
    }

    /// Case events that arrived for a case no longer tracked.
    pub fn stray_events(&self) -> u64 {
        self.stray_events
    }

    /// The backlog at `now`, with unit names from `registry`.
    pub fn report(&self, now: Timestamp, registry: &Registry) -> BacklogReport {
        let mut grids: BTreeMap<GridKey, BacklogRow> = BTreeMap::new();
        for case in self.cases.values() {
            let t = &case.track;
            if !t.in_progress() && t.status != gridcase_engine::domain::Status::Resolved {
                continue;
            }
            let row = grids.entry(case.at.clone()).or_default();
            if t.in_progress() {
                row.open += 1;
                row.aging.count(now.0 - t.submitted_at.0);
                if t.resolution_due < now {
                    row.overdue += 1;
                }
                *row.by_priority.entry(case.priority).or_default() += 1;
                *row.by_category.entry(case.category.clone()).or_default() += 1;
            } else {
                row.awaiting_callback += 1;
            }
        }
        for (key, s) in &self.solved {
            let row = grids.entry(key.clone()).or_default();
            row.resolved += s.resolved;
            row.solved_in_grid += s.in_grid;
        }
        // Grids of the registry with nothing to show still get a row, so a
        // quiet grid reads as zero rather than missing.
        for g in registry.units_of(UnitKind::Grid) {
            let community = registry.ancestor(&g.code, UnitKind::Community).map(|u| u.code.clone());
            let street = registry.ancestor(&g.code, UnitKind::Street).map(|u| u.code.clone());
            if let (Some(community), Some(street)) = (community, street) {
                let key = GridKey { street, community, grid: g.code.clone() };
                if !grids.keys().any(|k| k.grid == key.grid) {
                    grids.insert(key, BacklogRow::default());
                }
            }
        }
        let mut communities: BTreeMap<String, BacklogRow> = BTreeMap::new();
        let mut streets: BTreeMap<String, BacklogRow> = BTreeMap::new();
        let mut district = BacklogRow::default();
        for c in registry.units_of(UnitKind::Community) {
            communities.entry(c.code.clone()).or_default();
        }
        for s in registry.units_of(UnitKind::Street) {
            streets.entry(s.code.clone()).or_default();
        }
        for (key, row) in &grids {
            communities.entry(key.community.clone()).or_default().merge(row);
            streets.entry(key.street.clone()).or_default().merge(row);
            district.merge(row);
        }
        // A grid seen under two communities (it moved) gets one row per place.
        let mut grid_rows: Vec<BacklogRow> = Vec::with_capacity(grids.len());
        for (key, mut row) in grids {
            row.finish(UnitKind::Grid, &key.grid, registry);
            grid_rows.push(row);
        }
        grid_rows.sort_by(|a, b| a.code.cmp(&b.code));
        let finish = |m: BTreeMap<String, BacklogRow>, kind| {
            m.into_iter()
                .map(|(code, mut row)| {
                    row.finish(kind, &code, registry);
                    row
                })
                .collect::<Vec<_>>()
        };
        let district_code =
            registry.district().map(|d| d.code.clone()).unwrap_or_else(|| "district".into());
        district.finish(UnitKind::District, &district_code, registry);
        BacklogReport {
            now,
            grids: grid_rows,
            communities: finish(communities, UnitKind::Community),
            streets: finish(streets, UnitKind::Street),
            district,
        }
    }
}
