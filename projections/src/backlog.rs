//! The grid backlog: what is open in each grid, rolled up to community,
//! street and district, and how much was solved without leaving the grid.
//!
//! "Needs are collected in the grid, resources are pooled in the grid,
//! problems are solved in the grid." The state is a counter of resolved
//! cases per grid; the open cases themselves are the
//! [`ProjectionSet`](crate::ProjectionSet)'s live cases, which
//! [`Backlog::report`] reads together with everything that depends on the
//! time of the question (aging, overdue) from its `now`.
//!
//! Definitions (the words are `Case` methods, so every surface counts alike):
//! - *open*: [`Case::is_open`], not closed, rejected, merged or withdrawn;
//!   of those, *in progress* ([`Case::is_in_progress`]: submitted, assigned,
//!   escalated or dispatched) and *awaiting callback*
//!   ([`Case::awaits_callback`]: resolved, not called back yet); the rest
//!   are resolved, called back and waiting for closure.
//! - *age*: `now - submitted_at` of each open case, in buckets <1 day, 1–3,
//!   3–7, 7–15, >15 days; `oldest_submitted_at` is the oldest open case's.
//! - *overdue*: [`Case::is_overdue`] at `now` (in progress, past the
//!   resolution deadline as extended or as reset by a reopen).
//! - *solved in the grid*: among resolved cases ([`Case::resolved_now`]),
//!   those that never went above the community.
//!
//! A case counts where it was submitted (its grid, and that grid's community
//! and street at submission), even if the grid later moves.

use std::collections::BTreeMap;

use gridcase_engine::domain::{Case, Event, Priority};
use gridcase_engine::log::RecordView;
use gridcase_engine::org::{Registry, UnitKind};
use gridcase_engine::time::{Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};

use crate::projection::Projection;
use crate::set::LiveCases;

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

impl GridKey {
    fn of(case: &Case) -> GridKey {
        GridKey {
            street: case.street.clone(),
            community: case.community.clone(),
            grid: case.grid.clone(),
        }
    }
}

/// (resolved, solved in the grid) of a case as it stands.
fn solved(case: &Case) -> (bool, bool) {
    let resolved = case.resolved_now();
    (resolved, resolved && !case.left_community)
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

/// Counters by street, then community, then grid: the order of
/// [`GridKey`], searched level by level with borrowed codes so that an
/// update clones no string once the grid is known.
type SolvedByGrid = BTreeMap<String, BTreeMap<String, BTreeMap<String, Solved>>>;

/// The backlog projection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    solved: SolvedByGrid,
}

fn slot<'a, V: Default>(m: &'a mut BTreeMap<String, V>, code: &str) -> &'a mut V {
    // Look up before cloning the key: almost every change hits a known unit.
    if !m.contains_key(code) {
        m.insert(code.to_string(), V::default());
    }
    match m.get_mut(code) {
        Some(v) => v,
        // Inserted just above.
        None => unreachable!("the slot for {code} was just inserted"),
    }
}

impl Projection for Backlog {
    const NAME: &'static str = "backlog";

    fn apply(
        &mut self,
        _: &RecordView<'_>,
        _: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        let Some(after) = after else { return };
        // A new case is not resolved yet: nothing to count until it changes.
        let was = before.map_or((false, false), solved);
        let now = solved(after);
        if was != now {
            let s =
                slot(slot(slot(&mut self.solved, &after.street), &after.community), &after.grid);
            s.add(was, -1);
            s.add(now, 1);
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
    /// Open cases ([`Case::is_open`]).
    pub open: u64,
    /// Of those, being worked on ([`Case::is_in_progress`]).
    pub in_progress: u64,
    /// Of those, resolved and not called back yet ([`Case::awaits_callback`]).
    pub awaiting_callback: u64,
    /// Submission time of the oldest open case; `None` with no open case.
    pub oldest_submitted_at: Option<Timestamp>,
    /// Cases in progress past their resolution deadline.
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
        self.in_progress += o.in_progress;
        self.awaiting_callback += o.awaiting_callback;
        self.oldest_submitted_at = match (self.oldest_submitted_at, o.oldest_submitted_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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
    /// The backlog at `now` of the set's live cases `cases` (open ones and
    /// closed ones inside their reopen window), with unit names from
    /// `registry`.
    pub fn report(&self, now: Timestamp, registry: &Registry, cases: &LiveCases) -> BacklogReport {
        let mut grids: BTreeMap<GridKey, BacklogRow> = BTreeMap::new();
        for case in cases.values() {
            if !case.is_open() {
                continue;
            }
            let row = grids.entry(GridKey::of(case)).or_default();
            row.open += 1;
            row.in_progress += u64::from(case.is_in_progress());
            row.awaiting_callback += u64::from(case.awaits_callback());
            row.overdue += u64::from(case.is_overdue(now));
            row.aging.count(now.0.saturating_sub(case.submitted_at.0));
            row.oldest_submitted_at = Some(
                row.oldest_submitted_at.map_or(case.submitted_at, |t| t.min(case.submitted_at)),
            );
            *row.by_priority.entry(case.priority).or_default() += 1;
            *row.by_category.entry(case.category.clone()).or_default() += 1;
        }
        for (street, communities) in &self.solved {
            for (community, grids_solved) in communities {
                for (grid, s) in grids_solved {
                    let key = GridKey {
                        street: street.clone(),
                        community: community.clone(),
                        grid: grid.clone(),
                    };
                    let row = grids.entry(key).or_default();
                    row.resolved += s.resolved;
                    row.solved_in_grid += s.in_grid;
                }
            }
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
