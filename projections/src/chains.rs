//! Escalation chains: the path every case took up and down the hierarchy,
//! who held it and for how long, and what those paths add up to.
//!
//! A hop is derived from `CaseSubmitted` (→ community), `CaseEscalated`
//! (community → street), `CaseDispatched` (street → each department),
//! `CaseReturned` (department → street, 退单), `CaseResolved` (holder →
//! done), `CaseReopened` (→ each holder again, 重办) and a rejection, merge
//! or withdrawal (holder → ended). Each hop carries how long its from-unit
//! held the case.
//!
//! The projection keeps the path (shape and hops) of every case that can
//! still change, beside the set's [`Case`], and,
//! across all cases: counts by chain *shape* (`community`,
//! `community→street`, `community→street→D01`, `…→D01+return→D02`,
//! joint handling as `D01&D02`, `+reopen` marks), the time each level held
//! cases in a mergeable fixed-bucket histogram (median and p90 without
//! keeping samples), and escalation counts per community, street and
//! category. The path of any case, open or long closed, can be computed
//! from its events with [`chain_of`].

use std::collections::BTreeMap;

use gridcase_engine::domain::{Case, Event, HopReason, Level, Status};
use gridcase_engine::log::{RecordView, RecordedEvent};
use gridcase_engine::org::{Registry, UnitKind};
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::casemap::{case_id, case_key, CaseKey, CaseMap};
use crate::projection::Projection;
use crate::rates::Rate;

/// Buckets of [`Histogram`]: one below a minute, then four per doubling up
/// to 2^24 minutes (32 years).
const BUCKETS: usize = 1 + 4 * 24;

/// A histogram of durations in fixed log-scale minute buckets (±12% width):
/// small, mergeable by adding counts, and the same on every machine
/// because bucketing is integer arithmetic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS] }
    }
}

fn bucket(minutes: u64) -> usize {
    if minutes == 0 {
        return 0;
    }
    let e = 63 - minutes.leading_zeros() as usize;
    let sub = if e >= 2 { (minutes >> (e - 2)) & 3 } else { (minutes << (2 - e)) & 3 } as usize;
    (1 + e * 4 + sub).min(BUCKETS - 1)
}

/// Upper bound, in minutes, of a bucket.
fn upper_bound(b: usize) -> f64 {
    if b == 0 {
        return 1.0;
    }
    let e = ((b - 1) / 4) as i32;
    let sub = ((b - 1) % 4) as f64;
    (5.0 + sub) * 2f64.powi(e) / 4.0
}

impl Histogram {
    /// Records one duration in milliseconds (negative counts as zero).
    pub fn record(&mut self, ms: i64) {
        let minutes = (ms.max(0) / 60_000) as u64;
        if let Some(c) = self.counts.get_mut(bucket(minutes)) {
            *c += 1;
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1) in minutes, as the upper bound of its
    /// bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound(b));
            }
        }
        Some(upper_bound(BUCKETS - 1))
    }
}

/// What a hop was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HopKind {
    /// Registered, held by the community.
    Submitted,
    /// Community to street.
    Escalated,
    /// Street to a department.
    Dispatched,
    /// A department gave it back (to the street when no department is left).
    Returned,
    /// A holder resolved (its part of) the case.
    Resolved,
    /// Sent back to a holder after an unsatisfied callback or by a supervisor.
    Reopened,
    /// Rejected, merged or withdrawn while this unit held it.
    Ended,
}

/// One step of a case's path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// What happened.
    pub kind: HopKind,
    /// The unit that held it before (none for intake and reopen).
    pub from: Option<String>,
    /// The unit that holds it after (none when it left the chain).
    pub to: Option<String>,
    /// Why: manual, deadline, return, reopen.
    pub reason: HopReason,
    /// When (recorded time).
    pub at: Timestamp,
    /// How long `from` held the case, in milliseconds.
    pub held_ms: Option<i64>,
}

/// What the chains keep of a case beside the set's [`Case`]: the path so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPath {
    /// The chain's shape, e.g. `community→street→D01+return→D02`.
    pub shape: String,
    /// Every hop, in order.
    pub hops: Vec<Hop>,
}

impl ChainPath {
    /// The path of a case that has just been submitted: held by its community.
    pub fn start(case: &Case) -> ChainPath {
        ChainPath {
            shape: "community".into(),
            hops: vec![Hop {
                kind: HopKind::Submitted,
                from: None,
                to: Some(case.community.clone()),
                reason: HopReason::Manual,
                at: case.submitted_at,
                held_ms: None,
            }],
        }
    }

    /// Adds the hops of `event`, given the case as it stood before it;
    /// returns the holds it ended as (level, milliseconds).
    pub fn step(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: &Case,
    ) -> Vec<(Level, i64)> {
        // The time the hop took effect: an automatic one at the deadline it
        // enforced, so hold times do not depend on the tick schedule.
        let at = before.effective_at(event, rec.recorded_at);
        let level = before.level;
        // Only these events move holders; the others leave the path alone.
        let moves = matches!(
            event,
            Event::CaseEscalated { .. }
                | Event::CaseDispatched { .. }
                | Event::CaseReturned { .. }
                | Event::CaseResolved { .. }
                | Event::CaseReopened { .. }
                | Event::CaseRejected { .. }
                | Event::CaseMerged { .. }
                | Event::CaseWithdrawn { .. }
        );
        if !moves {
            return Vec::new();
        }
        // How long a working holder has held the case, read in place (no copies).
        let held = |unit: &str| -> Option<i64> {
            before.working_holders().find(|h| h.unit == unit).map(|h| at.0 - h.since.0)
        };
        let mut ended: Vec<(Level, i64)> = Vec::new();
        let hops = &mut self.hops;
        let mut hop = |kind, from: Option<&str>, to: Option<&str>, reason, held_ms: Option<i64>| {
            if let Some(ms) = held_ms {
                ended.push((level, ms));
            }
            hops.push(Hop {
                kind,
                from: from.map(str::to_string),
                to: to.map(str::to_string),
                reason,
                at,
                held_ms,
            })
        };
        match event {
            Event::CaseEscalated { from, to, reason, .. } => {
                hop(HopKind::Escalated, Some(from), Some(to), *reason, held(from));
                self.shape.push_str("→street");
            }
            Event::CaseDispatched { from, departments, reason, .. } => {
                let mut street_held = if level == Level::Street { held(from) } else { None };
                for d in departments {
                    hop(HopKind::Dispatched, Some(from), Some(d), *reason, street_held.take());
                }
                let joined = departments.join("&");
                if level == Level::Department {
                    self.shape.push('&');
                } else {
                    self.shape.push('→');
                }
                self.shape.push_str(&joined);
            }
            Event::CaseReturned { department, street_hold_until, .. } => {
                let to = street_hold_until.map(|_| before.street.as_str());
                hop(HopKind::Returned, Some(department), to, HopReason::Return, held(department));
                self.shape.push_str("+return");
            }
            Event::CaseResolved { unit, .. } => {
                hop(HopKind::Resolved, Some(unit), None, HopReason::Manual, held(unit));
            }
            Event::CaseReopened { holders, .. } => {
                for h in holders {
                    hop(HopKind::Reopened, None, Some(h), HopReason::Reopen, None);
                }
                self.shape.push_str("+reopen");
            }
            Event::CaseRejected { .. } | Event::CaseMerged { .. } | Event::CaseWithdrawn { .. } => {
                for h in before.working_holders() {
                    hop(
                        HopKind::Ended,
                        Some(&h.unit),
                        None,
                        HopReason::Manual,
                        Some(at.0 - h.since.0),
                    );
                }
            }
            _ => {}
        }
        ended
    }
}

/// The path of one case, with where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseChain {
    /// Case id.
    pub case_id: String,
    /// Category code.
    pub category: String,
    /// Community at submission.
    pub community: String,
    /// Street at submission.
    pub street: String,
    /// The chain's shape, e.g. `community→street→D01+return→D02`.
    pub shape: String,
    /// Every hop, in order.
    pub hops: Vec<Hop>,
    /// Where the case stands.
    pub status: Status,
    /// The units working on it now ([`Case::working_holders`]), with the
    /// time each got it.
    pub holders: Vec<(String, Timestamp)>,
}

impl CaseChain {
    /// The chain of case `id` in state `case` with path `path`.
    pub fn new(id: &str, case: &Case, path: &ChainPath) -> CaseChain {
        CaseChain {
            case_id: id.to_string(),
            category: case.category.clone(),
            community: case.community.clone(),
            street: case.street.clone(),
            shape: path.shape.clone(),
            hops: path.hops.clone(),
            status: case.status,
            holders: case.working_holders().map(|h| (h.unit.clone(), h.since)).collect(),
        }
    }
}

/// The path of one case from its events (as `Engine::history` returns them);
/// `None` when the first event is not `CaseSubmitted`. It folds the case
/// with `Case::apply` as it goes, since each hop needs the holders of the
/// case before the event.
pub fn chain_of(history: &[(Event, RecordedEvent)]) -> Option<CaseChain> {
    let (first_event, first) = history.first()?;
    let id = case_id(&first.stream).unwrap_or(&first.stream);
    let mut case = Case::start(first_event, &first.actor, first.recorded_at)?;
    let mut path = ChainPath::start(&case);
    for (event, rec) in &history[1..] {
        path.step(&RecordView::of(rec), event, &case);
        case.apply(event, rec.recorded_at);
    }
    Some(CaseChain::new(id, &case, &path))
}

/// How often cases of a unit or category went up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalations {
    /// Cases submitted.
    pub cases: u64,
    /// Of those, escalated to the street at least once.
    pub to_street: u64,
    /// Of those, dispatched to a department at least once.
    pub to_department: u64,
}

/// The escalation-chain projection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chains {
    /// The path of every live case.
    paths: CaseMap<ChainPath>,
    shapes: BTreeMap<String, u64>,
    levels: BTreeMap<Level, Histogram>,
    communities: BTreeMap<String, Escalations>,
    streets: BTreeMap<String, Escalations>,
    categories: BTreeMap<String, Escalations>,
}

/// Escalation counters of a case's community, street and category.
struct Tallies<'a> {
    communities: &'a mut BTreeMap<String, Escalations>,
    streets: &'a mut BTreeMap<String, Escalations>,
    categories: &'a mut BTreeMap<String, Escalations>,
}

impl Tallies<'_> {
    fn bump(&mut self, case: &Case, f: impl Fn(&mut Escalations)) {
        // Look up before cloning the key: almost every call hits a known unit.
        fn one(m: &mut BTreeMap<String, Escalations>, code: &str, f: &impl Fn(&mut Escalations)) {
            if let Some(e) = m.get_mut(code) {
                return f(e);
            }
            let mut e = Escalations::default();
            f(&mut e);
            m.insert(code.to_string(), e);
        }
        one(self.communities, &case.community, &f);
        one(self.streets, &case.street, &f);
        one(self.categories, &case.category, &f);
    }
}

fn shape_count(shapes: &mut BTreeMap<String, u64>, shape: &str, sign: i64) {
    match shapes.get_mut(shape) {
        Some(n) => {
            *n = n.wrapping_add_signed(sign);
            if *n == 0 {
                shapes.remove(shape);
            }
        }
        None => {
            shapes.insert(shape.to_string(), sign.max(0) as u64);
        }
    }
}

impl Projection for Chains {
    const NAME: &'static str = "chains";

    fn apply(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        let (Some(after), Some(key)) = (after, case_key(rec)) else { return };
        let mut tallies = Tallies {
            communities: &mut self.communities,
            streets: &mut self.streets,
            categories: &mut self.categories,
        };
        let Some(before) = before else {
            if self.paths.contains_key(&key) {
                return;
            }
            let path = ChainPath::start(after);
            tallies.bump(after, |e| e.cases += 1);
            shape_count(&mut self.shapes, &path.shape, 1);
            self.paths.insert(key, path);
            return;
        };
        // The set and this projection evict together, so a case the set
        // hands over is always here.
        let Some(path) = self.paths.get_mut(&key) else { return };
        let old_shape_len = path.shape.len();
        let old_shape = matches!(
            event,
            Event::CaseEscalated { .. }
                | Event::CaseDispatched { .. }
                | Event::CaseReturned { .. }
                | Event::CaseReopened { .. }
        )
        .then(|| path.shape.clone());
        for (level, ms) in path.step(rec, event, before) {
            self.levels.entry(level).or_default().record(ms);
        }
        if let (Some(old), true) = (&old_shape, path.shape.len() != old_shape_len) {
            shape_count(&mut self.shapes, old, -1);
            shape_count(&mut self.shapes, &path.shape, 1);
        }
        if !before.left_community && after.left_community {
            tallies.bump(after, |e| e.to_street += 1);
        }
        if !before.dispatched && after.dispatched {
            tallies.bump(after, |e| e.to_department += 1);
        }
    }

    fn evict(&mut self, case: &CaseKey) {
        self.paths.remove(case);
    }
}

/// How many cases took one shape of chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeCount {
    /// The shape.
    pub shape: String,
    /// Cases.
    pub cases: u64,
}

/// How long one level held cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelTime {
    /// The level.
    pub level: Level,
    /// Completed holds.
    pub holds: u64,
    /// Median hold, in minutes (bucket upper bound).
    pub median_minutes: Option<f64>,
    /// 90th percentile, in minutes (bucket upper bound).
    pub p90_minutes: Option<f64>,
}

/// Escalation of one community, street or category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EscalationRow {
    /// Unit or category code.
    pub code: String,
    /// Name from the registry.
    pub name: String,
    /// The counts.
    pub counts: Escalations,
    /// For a community or category: to_street / cases. For a street:
    /// to_department / to_street (how much of what reached it went on up).
    pub rate: Rate,
}

/// Escalation chains across cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Shapes, most frequent first.
    pub shapes: Vec<ShapeCount>,
    /// Time held per level.
    pub levels: Vec<LevelTime>,
    /// Per community, by code.
    pub communities: Vec<EscalationRow>,
    /// Per street, by code.
    pub streets: Vec<EscalationRow>,
    /// Per category, the most escalated first.
    pub categories: Vec<EscalationRow>,
}

impl Chains {
    /// The path of a case that can still change (open, or closed inside its
    /// reopen window); [`crate::ProjectionSet::chain`] adds where it stands.
    pub fn path(&self, case_id: &str) -> Option<&ChainPath> {
        self.paths.get(&CaseKey::new(case_id))
    }

    /// Cases with a path here (the set's live cases).
    pub fn tracked_cases(&self) -> usize {
        self.paths.len()
    }

    /// The cross-case figures, with names from `registry`.
    pub fn report(&self, registry: &Registry) -> ChainReport {
        let mut shapes: Vec<ShapeCount> =
            self.shapes.iter().map(|(s, n)| ShapeCount { shape: s.clone(), cases: *n }).collect();
        shapes.sort_by(|a, b| b.cases.cmp(&a.cases).then_with(|| a.shape.cmp(&b.shape)));
        let levels = Level::ALL
            .iter()
            .map(|l| {
                let h = self.levels.get(l).cloned().unwrap_or_default();
                LevelTime {
                    level: *l,
                    holds: h.count(),
                    median_minutes: h.quantile(0.5),
                    p90_minutes: h.quantile(0.9),
                }
            })
            .collect();
        let name = |code: &str| -> String {
            if let Some(c) = registry.categories.get(code) {
                return c.name.clone();
            }
            registry.name_of(code).to_string()
        };
        let rows = |m: &BTreeMap<String, Escalations>, street: bool, extra: Vec<String>| {
            let mut all = m.clone();
            for code in extra {
                all.entry(code).or_default();
            }
            all.into_iter()
                .map(|(code, e)| EscalationRow {
                    name: name(&code),
                    code,
                    counts: e,
                    rate: if street {
                        Rate { numerator: e.to_department, denominator: e.to_street }
                    } else {
                        Rate { numerator: e.to_street, denominator: e.cases }
                    },
                })
                .collect::<Vec<_>>()
        };
        let communities = rows(
            &self.communities,
            false,
            registry.units_of(UnitKind::Community).map(|u| u.code.clone()).collect(),
        );
        let streets = rows(
            &self.streets,
            true,
            registry.units_of(UnitKind::Street).map(|u| u.code.clone()).collect(),
        );
        let mut categories =
            rows(&self.categories, false, registry.categories.keys().cloned().collect());
        categories.sort_by(|a, b| b.rate.cmp_exact(&a.rate).then_with(|| a.code.cmp(&b.code)));
        ChainReport { shapes, levels, communities, streets, categories }
    }
}
