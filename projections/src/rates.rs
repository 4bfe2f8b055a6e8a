//! Rates per unit and period: resolution (问题解决率), response,
//! satisfaction, on-time closure, return (退单) and redo (重办), with the
//! target flag and the monthly ranking. `projections/RATES.md` states the
//! definitions; this module is their one implementation.
//!
//! Counters are kept incrementally. Each case that can still change has a
//! compact record beside the set's [`Case`]: the counter rows it
//! contributes to (its grid, community, street and the district, for the
//! day, week and month of its submission, plus the rows of every
//! department it was dispatched to) and its per-department parts. When an
//! event changes what a case contributes, the contribution of the case as
//! it stood before is subtracted from those rows and the contribution of
//! the case after added, so no query ever scans cases. Records are evicted
//! with the set's case (see `retention`); the counters keep what they
//! contributed.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use gridcase_engine::domain::{Case, Event, Satisfaction};
use gridcase_engine::log::RecordView;
use gridcase_engine::org::{Registry, UnitKind};
use serde::{Deserialize, Serialize};

use crate::casemap::{case_key, CaseKey, CaseMap};
use crate::period::{Period, PeriodKind};
use crate::projection::Projection;

/// The default resolution-rate target, in percent (Chengdu reports above 98.5%).
pub const DEFAULT_TARGET_PERCENT: f64 = 98.5;

/// A target resolution rate as given by a person or a client: a finite
/// percentage above 0 and at most 100 (RATES.md "Target and ranking"). The
/// one check the CLI's `--target` and the API's `target=` both run: NaN
/// would flag nothing, 150 would flag everything.
pub fn check_target(percent: f64) -> Result<f64, crate::Error> {
    if percent.is_finite() && percent > 0.0 && percent <= 100.0 {
        Ok(percent)
    } else {
        Err(crate::Error::InvalidInput(format!(
            "the target {percent} is not a percentage: give a number above 0 and at most 100"
        )))
    }
}

/// Counters of one unit in one period (see RATES.md for each definition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Cases in the cohort (for a department: cases dispatched to it).
    pub cases: u64,
    /// Of those, rejected as invalid, merged or withdrawn: excluded from every rate.
    pub excluded: u64,
    /// Due: resolved or closed, or marked overdue, or reopened.
    pub due: u64,
    /// Due and resolved now.
    pub resolved: u64,
    /// Resolved at or before the resolution deadline.
    pub on_time: u64,
    /// Cases whose response can be judged: responded, or marked overdue.
    pub responses_due: u64,
    /// Responded at or before the response deadline.
    pub responded_on_time: u64,
    /// Cases with a callback (since the last reopen).
    pub callbacks: u64,
    /// Last callback satisfied or basically satisfied.
    pub satisfied: u64,
    /// Cases dispatched to a department (for a department: dispatches to it).
    pub dispatched: u64,
    /// Cases returned at least once (for a department: its returns).
    pub returned: u64,
    /// Cases resolved at least once.
    pub resolved_once: u64,
    /// Cases reopened at least once.
    pub reopened: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts, sign: i64) {
        let f = |a: &mut u64, b: u64| *a = a.wrapping_add_signed(sign.wrapping_mul(b as i64));
        f(&mut self.cases, o.cases);
        f(&mut self.excluded, o.excluded);
        f(&mut self.due, o.due);
        f(&mut self.resolved, o.resolved);
        f(&mut self.on_time, o.on_time);
        f(&mut self.responses_due, o.responses_due);
        f(&mut self.responded_on_time, o.responded_on_time);
        f(&mut self.callbacks, o.callbacks);
        f(&mut self.satisfied, o.satisfied);
        f(&mut self.dispatched, o.dispatched);
        f(&mut self.returned, o.returned);
        f(&mut self.resolved_once, o.resolved_once);
        f(&mut self.reopened, o.reopened);
    }
}

/// What a case's department part tracks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DeptPart {
    code: String,
    /// Counter rows of this department for the case's day, week and month.
    rows: [u32; 3],
    /// Dispatched to it and not returned since.
    active: bool,
    /// It resolved its part since it was last dispatched to or reopened.
    resolved: bool,
    dispatches: u32,
    returns: u32,
}

/// What rates keep of a case beside the set's [`Case`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RateCase {
    /// Rows of grid, community, street and district, for day, week, month.
    geo_rows: [u32; 12],
    depts: Vec<DeptPart>,
}

impl RateCase {
    /// What a case contributes to each of its geographic rows: RATES.md's
    /// definitions, through the `Case` methods that state them.
    fn contribution(t: &Case) -> Counts {
        let mut c = Counts { cases: 1, ..Counts::default() };
        if t.is_excluded() {
            c.excluded = 1;
            return c;
        }
        let due = t.is_due();
        let resolved = due && t.resolved_now();
        c.due = due.into();
        c.resolved = resolved.into();
        c.on_time = (resolved && t.resolved_at.is_some_and(|r| r <= t.resolution_due)).into();
        c.responses_due = t.response_judged().into();
        c.responded_on_time = t.responded_at.is_some_and(|r| r <= t.response_due).into();
        if let Some(cb) = &t.last_callback {
            c.callbacks = 1;
            c.satisfied = matches!(
                cb.satisfaction,
                Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
            )
            .into();
        }
        c.dispatched = t.dispatched.into();
        c.returned = (t.return_count > 0).into();
        c.resolved_once = t.was_resolved().into();
        c.reopened = (t.reopen_count > 0).into();
        c
    }

    /// What the case contributes to a department's rows, given the case-level contribution.
    fn dept_contribution(case: &Counts, part: &DeptPart) -> Counts {
        let mut c = Counts { cases: 1, excluded: case.excluded, ..Counts::default() };
        if case.excluded == 1 {
            return c;
        }
        c.dispatched = part.dispatches.into();
        c.returned = part.returns.into();
        if part.active {
            let resolved = case.resolved == 1 && part.resolved;
            c.due = case.due;
            c.resolved = resolved.into();
            c.on_time = (resolved && case.on_time == 1).into();
            c.responses_due = case.responses_due;
            c.responded_on_time = case.responded_on_time;
            c.callbacks = case.callbacks;
            c.satisfied = case.satisfied;
            c.resolved_once = case.resolved_once;
            c.reopened = case.reopened;
        }
        c
    }
}

/// The rates projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Minutes east of UTC of the district's time zone (cohort periods).
    offset_minutes: i32,
    /// The district's code, from the registry's events.
    district: Option<String>,
    /// kind → code → period → row.
    units: BTreeMap<UnitKind, BTreeMap<String, BTreeMap<Period, u32>>>,
    /// The counters, indexed by row (rows are allocated in log order, so the
    /// layout is as deterministic as the log).
    rows: Vec<Counts>,
    /// Per live case: its rows and department parts.
    cases: CaseMap<RateCase>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates::new(480)
    }
}

/// The counter rows of one unit for a case's day, week and month,
/// allocated on first use (one search for the unit, three for the periods).
fn rows_of(
    units: &mut BTreeMap<UnitKind, BTreeMap<String, BTreeMap<Period, u32>>>,
    rows: &mut Vec<Counts>,
    kind: UnitKind,
    code: &str,
    periods: &[Period; 3],
) -> [u32; 3] {
    let by_code = units.entry(kind).or_default();
    if !by_code.contains_key(code) {
        by_code.insert(code.to_string(), BTreeMap::new());
    }
    let mut out = [0u32; 3];
    if let Some(by_period) = by_code.get_mut(code) {
        for (slot, p) in out.iter_mut().zip(periods) {
            *slot = *by_period.entry(*p).or_insert_with(|| {
                rows.push(Counts::default());
                (rows.len() - 1) as u32
            });
        }
    }
    out
}

impl Projection for Rates {
    const NAME: &'static str = "rates";

    fn apply(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        if let Event::UnitAdded { code, kind: UnitKind::District, .. } = event {
            if self.district.is_none() {
                self.district = Some(code.clone());
            }
            return;
        }
        let (Some(after), Some(key)) = (after, case_key(rec)) else { return };
        let Some(before) = before else {
            return self.start(key, after);
        };
        // Rows for departments named for the first time in this case, found
        // before the case's record is borrowed for the update.
        let mut new_parts: Vec<DeptPart> = Vec::new();
        if let Event::CaseDispatched { departments, .. } = event {
            let Some(case) = self.cases.get(&key) else { return };
            let periods = Period::of(after.submitted_at, self.offset_minutes);
            let fresh: Vec<&String> =
                departments.iter().filter(|d| !case.depts.iter().any(|p| &p.code == *d)).collect();
            for d in fresh {
                let rows =
                    rows_of(&mut self.units, &mut self.rows, UnitKind::Department, d, &periods);
                new_parts.push(DeptPart {
                    code: d.clone(),
                    rows,
                    active: false,
                    resolved: false,
                    dispatches: 0,
                    returns: 0,
                });
            }
        }
        // The set and this projection evict together, so a case the set
        // hands over is always here.
        let Some(case) = self.cases.get_mut(&key) else { return };
        let old = RateCase::contribution(before);
        let old_parts: Vec<Counts> =
            case.depts.iter().map(|p| RateCase::dept_contribution(&old, p)).collect();
        case.depts.extend(new_parts);
        match event {
            Event::CaseDispatched { departments, .. } => {
                for p in case.depts.iter_mut().filter(|p| departments.contains(&p.code)) {
                    p.dispatches += 1;
                    p.active = true;
                    p.resolved = false;
                }
            }
            Event::CaseReturned { department, .. } => {
                if let Some(p) = case.depts.iter_mut().find(|p| &p.code == department) {
                    p.returns += 1;
                    p.active = false;
                }
            }
            Event::CaseResolved { unit, .. } => {
                if let Some(p) = case.depts.iter_mut().find(|p| &p.code == unit) {
                    p.resolved = true;
                }
            }
            Event::CaseReopened { .. } => {
                for p in &mut case.depts {
                    p.resolved = false;
                }
            }
            _ => {}
        }
        let new = RateCase::contribution(after);
        if new != old {
            for r in case.geo_rows {
                let row = &mut self.rows[r as usize];
                row.add(&old, -1);
                row.add(&new, 1);
            }
        }
        for (i, part) in case.depts.iter().enumerate() {
            let was = old_parts.get(i).copied().unwrap_or_default();
            let now = RateCase::dept_contribution(&new, part);
            if was != now {
                for r in part.rows {
                    let row = &mut self.rows[r as usize];
                    row.add(&was, -1);
                    row.add(&now, 1);
                }
            }
        }
    }

    fn evict(&mut self, case: &CaseKey) {
        self.cases.remove(case);
    }
}

impl Rates {
    /// A new case: its rows (allocated on first use) and its first contribution.
    fn start(&mut self, key: CaseKey, case: &Case) {
        if self.cases.contains_key(&key) {
            return;
        }
        let district = self.district.clone().unwrap_or_else(|| "district".into());
        let periods = Period::of(case.submitted_at, self.offset_minutes);
        let mut geo_rows = [0u32; 12];
        let units = [
            (UnitKind::Grid, case.grid.as_str()),
            (UnitKind::Community, case.community.as_str()),
            (UnitKind::Street, case.street.as_str()),
            (UnitKind::District, district.as_str()),
        ];
        for (i, (kind, code)) in units.iter().enumerate() {
            let r = rows_of(&mut self.units, &mut self.rows, *kind, code, &periods);
            geo_rows[i * 3..i * 3 + 3].copy_from_slice(&r);
        }
        let c = RateCase::contribution(case);
        for r in geo_rows {
            self.rows[r as usize].add(&c, 1);
        }
        self.cases.insert(key, RateCase { geo_rows, depts: Vec::new() });
    }
}

/// A ratio with its counts, so that "no data" is not mistaken for 100%.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Numerator.
    pub numerator: u64,
    /// Denominator.
    pub denominator: u64,
}

impl Rate {
    fn new(numerator: u64, denominator: u64) -> Rate {
        Rate { numerator, denominator }
    }

    /// The rate in percent; `None` when the denominator is 0 (no data).
    pub fn percent(&self) -> Option<f64> {
        (self.denominator > 0).then(|| 100.0 * self.numerator as f64 / self.denominator as f64)
    }

    /// Exact comparison of two rates (no data sorts below any rate).
    pub fn cmp_exact(&self, other: &Rate) -> Ordering {
        match (self.denominator, other.denominator) {
            (0, 0) => Ordering::Equal,
            (0, _) => Ordering::Less,
            (_, 0) => Ordering::Greater,
            _ => (self.numerator as u128 * other.denominator as u128)
                .cmp(&(other.numerator as u128 * self.denominator as u128)),
        }
    }
}

/// The rates of one unit in one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitRates {
    /// Unit kind.
    pub kind: UnitKind,
    /// Unit code.
    pub code: String,
    /// Unit name (the code when the registry does not know it).
    pub name: String,
    /// The counters behind the rates.
    pub counts: Counts,
    /// Resolution rate: resolved / due.
    pub resolution: Rate,
    /// Response rate: responded on time / responses due.
    pub response: Rate,
    /// Satisfaction rate: satisfied / callbacks.
    pub satisfaction: Rate,
    /// On-time closure rate: resolved on time / due.
    pub on_time: Rate,
    /// Return rate: returned / dispatched.
    pub return_rate: Rate,
    /// Redo rate: reopened / resolved once.
    pub redo: Rate,
    /// Below the target resolution rate; `None` with no due case (no data).
    pub below_target: Option<bool>,
}

impl UnitRates {
    pub(crate) fn new(
        kind: UnitKind,
        code: &str,
        counts: Counts,
        target_percent: f64,
        registry: &Registry,
    ) -> UnitRates {
        let c = counts;
        let resolution = Rate::new(c.resolved, c.due);
        UnitRates {
            kind,
            code: code.to_string(),
            name: registry.name_of(code).to_string(),
            counts,
            resolution,
            response: Rate::new(c.responded_on_time, c.responses_due),
            satisfaction: Rate::new(c.satisfied, c.callbacks),
            on_time: Rate::new(c.on_time, c.due),
            return_rate: Rate::new(c.returned, c.dispatched),
            redo: Rate::new(c.reopened, c.resolved_once),
            below_target: resolution.percent().map(|p| p < target_percent),
        }
    }
}

/// Rates of every unit in one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatesReport {
    /// The period's label.
    pub period: String,
    /// The target resolution rate, in percent.
    pub target_percent: f64,
    /// District, streets, communities, grids, departments, each by code.
    pub units: Vec<UnitRates>,
}

impl RatesReport {
    /// Units below the target (units with no data are not flagged).
    pub fn below_target(&self) -> impl Iterator<Item = &UnitRates> {
        self.units.iter().filter(|u| u.below_target == Some(true))
    }
}

/// One place in a ranking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedUnit {
    /// Rank (1 is best; units tied on all three rates share a rank).
    pub rank: u32,
    /// The unit's rates.
    pub unit: UnitRates,
}

/// The ranking of one kind of unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindRanking {
    /// Unit kind.
    pub kind: UnitKind,
    /// Units with due cases, best first.
    pub ranked: Vec<RankedUnit>,
    /// Units with no due case in the month (no data, not ranked).
    pub no_data: Vec<String>,
}

/// The monthly ranking by resolution rate (ties: satisfaction, then on-time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// The month's label.
    pub month: String,
    /// Streets, communities, grids, departments.
    pub kinds: Vec<KindRanking>,
}

/// The kinds a report lists, in order.
pub(crate) const REPORT_KINDS: [UnitKind; 5] = [
    UnitKind::District,
    UnitKind::Street,
    UnitKind::Community,
    UnitKind::Grid,
    UnitKind::Department,
];

impl Rates {
    /// An empty projection for a district `offset_minutes` east of UTC.
    pub fn new(offset_minutes: i32) -> Rates {
        Rates {
            offset_minutes,
            district: None,
            units: BTreeMap::new(),
            rows: Vec::new(),
            cases: CaseMap::default(),
        }
    }

    /// Cases with a record here (the set's live cases: those that can still change).
    pub fn tracked_cases(&self) -> usize {
        self.cases.len()
    }

    /// Counter rows (units × periods).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The district's code as the rates use it.
    pub fn district_code(&self) -> String {
        self.district.clone().unwrap_or_else(|| "district".into())
    }

    /// The counters of one unit in one period (zero when it has none).
    pub fn counts(&self, kind: UnitKind, code: &str, period: Period) -> Counts {
        self.units
            .get(&kind)
            .and_then(|m| m.get(code))
            .and_then(|m| m.get(&period))
            .and_then(|r| self.rows.get(*r as usize))
            .copied()
            .unwrap_or_default()
    }

    /// Periods of a kind that have counters, oldest first.
    pub fn periods(&self, kind: PeriodKind) -> Vec<Period> {
        let mut v: Vec<Period> = self
            .units
            .get(&UnitKind::District)
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|m| m.keys())
            .filter(|p| p.kind() == kind)
            .copied()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn codes(&self, kind: UnitKind, registry: &Registry) -> Vec<String> {
        let mut codes: Vec<String> =
            self.units.get(&kind).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        if kind == UnitKind::District {
            if codes.is_empty() {
                codes.push(self.district_code());
            }
        } else {
            codes.extend(registry.units_of(kind).map(|u| u.code.clone()));
        }
        codes.sort();
        codes.dedup();
        codes
    }

    /// Every unit's rates in `period`; units below `target_percent` are flagged.
    pub fn report(&self, period: Period, target_percent: f64, registry: &Registry) -> RatesReport {
        let mut units = Vec::new();
        for kind in REPORT_KINDS {
            for code in self.codes(kind, registry) {
                let counts = self.counts(kind, &code, period);
                units.push(UnitRates::new(kind, &code, counts, target_percent, registry));
            }
        }
        RatesReport { period: period.label(), target_percent, units }
    }

    /// The ranking of streets, communities, grids and departments in `month`.
    pub fn ranking(&self, month: Period, target_percent: f64, registry: &Registry) -> Ranking {
        let report = self.report(month, target_percent, registry);
        let mut kinds = Vec::new();
        for kind in [UnitKind::Street, UnitKind::Community, UnitKind::Grid, UnitKind::Department] {
            let (mut with, without): (Vec<UnitRates>, Vec<UnitRates>) = report
                .units
                .iter()
                .filter(|u| u.kind == kind)
                .cloned()
                .partition(|u| u.counts.due > 0);
            let key = |a: &UnitRates, b: &UnitRates| {
                b.resolution
                    .cmp_exact(&a.resolution)
                    .then_with(|| b.satisfaction.cmp_exact(&a.satisfaction))
                    .then_with(|| b.on_time.cmp_exact(&a.on_time))
            };
            with.sort_by(|a, b| key(a, b).then_with(|| a.code.cmp(&b.code)));
            let mut ranked: Vec<RankedUnit> = Vec::with_capacity(with.len());
            for (i, unit) in with.into_iter().enumerate() {
                let rank = match ranked.last() {
                    Some(prev) if key(&prev.unit, &unit) == Ordering::Equal => prev.rank,
                    _ => i as u32 + 1,
                };
                ranked.push(RankedUnit { rank, unit });
            }
            kinds.push(KindRanking {
                kind,
                ranked,
                no_data: without.into_iter().map(|u| u.code).collect(),
            });
        }
        Ranking { month: month.label(), kinds }
    }
}
