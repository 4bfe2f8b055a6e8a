//! Test support: a line-per-event script language, the one data-driven
//! helper [`check`] (events in, expected table out), and a small but real
//! organisation with an [`Engine`] over a temporary sled log.
//!
//! Script lines read `d<day> <HH:MM> <case> <verb> [args]`, in log order,
//! with times in the district's zone (+08:00) counted from Monday
//! 2026-03-02. The helper folds an engine [`Case`] per case alongside, so
//! that verbs can fill in what the engine would (holders, completeness,
//! where a reopen goes) and the script stays short.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use gridcase_engine::domain::event::OverdueKind;
use gridcase_engine::domain::{
    ActorId, Case, CaseId, DeadlinePolicy, Event, HopReason, Level, Priority, Satisfaction,
};
use gridcase_engine::engine::{CommandOptions, CommandResult};
use gridcase_engine::log::{EventLog, RecordedEvent, SledLog, SledOptions, CODEC_POSTCARD};
use gridcase_engine::org::{OrgFile, ORG_STREAM};
use gridcase_engine::time::{Clock, ManualClock, Timestamp, DAY_MS, HOUR_MS};
use gridcase_engine::{Engine, EngineOptions, Error};
use gridcase_projections::{Period, ProjectionSet};

/// Monday 2026-03-02 00:00 at +08:00.
pub fn base() -> Timestamp {
    Timestamp::parse("2026-03-01T16:00:00Z").unwrap()
}

/// `d<day> HH:MM` in the district's zone.
pub fn at(day: i64, hhmm: &str) -> Timestamp {
    let (h, m) = hhmm.split_once(':').unwrap();
    let (h, m): (i64, i64) = (h.parse().unwrap(), m.parse().unwrap());
    base().plus_ms(day * DAY_MS + h * HOUR_MS + m * 60_000)
}

/// The organisation of the script tests (and the engine tests).
pub const ORG: &str = r#"
[district]
code = "D"
name = "亭湖区"

[[streets]]
code = "S1"
name = "文峰街道"

[[streets.communities]]
code = "C1"
name = "新村社区"

[[streets.communities.grids]]
code = "G1"
name = "第一网格"
micro_grids = ["1号楼", "2号楼"]

[[streets.communities.grids]]
code = "G2"
name = "第二网格"
micro_grids = ["3号楼"]

[[streets.communities]]
code = "C2"
name = "先锋社区"

[[streets.communities.grids]]
code = "G3"
name = "第三网格"
micro_grids = ["5号楼"]

[[streets]]
code = "S2"
name = "五星街道"

[[streets.communities]]
code = "C3"
name = "大庆社区"

[[streets.communities.grids]]
code = "G4"
name = "第四网格"
micro_grids = ["7号楼"]

[[departments]]
code = "D01"
name = "城管局"

[[departments]]
code = "D02"
name = "住建局"

[[departments]]
code = "D03"
name = "环保局"

[[categories]]
code = "lighting"
name = "路灯照明"
department = "D01"
class = "utilities"

[[categories]]
code = "sanitation"
name = "环境卫生"
department = "D02"
class = "ordinary"

[[categories]]
code = "noise"
name = "噪声扰民"
department = "D03"
class = "ordinary"

[[staff]]
id = "gw1"
name = "张三"
role = "grid_worker"
unit = "G1"

[[staff]]
id = "gw2"
name = "李四"
role = "grid_worker"
unit = "G2"

[[staff]]
id = "gw3"
name = "王五"
role = "grid_worker"
unit = "G3"

[[staff]]
id = "gw4"
name = "赵六"
role = "grid_worker"
unit = "G4"

[[staff]]
id = "cs1"
name = "社区一"
role = "community_staff"
unit = "C1"

[[staff]]
id = "cs2"
name = "社区二"
role = "community_staff"
unit = "C2"

[[staff]]
id = "cs3"
name = "社区三"
role = "community_staff"
unit = "C3"

[[staff]]
id = "ss1"
name = "街道一"
role = "street_staff"
unit = "S1"

[[staff]]
id = "ss2"
name = "街道二"
role = "street_staff"
unit = "S2"

[[staff]]
id = "ds1"
name = "城管员"
role = "department_staff"
unit = "D01"

[[staff]]
id = "ds2"
name = "住建员"
role = "department_staff"
unit = "D02"

[[staff]]
id = "ds3"
name = "环保员"
role = "department_staff"
unit = "D03"

[[staff]]
id = "sup"
name = "区督办"
role = "district_supervisor"
unit = "D"
"#;

/// Community and street of a fixture grid.
fn place(grid: &str) -> (&'static str, &'static str) {
    match grid {
        "G1" | "G2" => ("C1", "S1"),
        "G3" => ("C2", "S1"),
        "G4" => ("C3", "S2"),
        other => panic!("unknown fixture grid {other}"),
    }
}

/// A log written by hand: records with positions, versions and times.
#[derive(Default)]
pub struct Script {
    pub records: Vec<(RecordedEvent, Event)>,
    cases: BTreeMap<String, Case>,
    versions: BTreeMap<String, u64>,
}

impl Script {
    /// The fixture organisation's events at `base() - 1 day`.
    pub fn with_org() -> Script {
        let mut s = Script::default();
        let org = OrgFile::parse(ORG).unwrap();
        for e in org.events().unwrap() {
            s.push(ORG_STREAM, base().plus_ms(-DAY_MS), "admin", e);
        }
        s
    }

    fn push(&mut self, stream: &str, t: Timestamp, actor: &str, event: Event) {
        if let Some((last, _)) = self.records.last() {
            assert!(t >= last.recorded_at, "script lines must be in time order: {stream} at {t}");
        }
        let v = self.versions.entry(stream.to_string()).or_default();
        *v += 1;
        let data = event.to_data();
        let rec = RecordedEvent {
            position: self.records.len() as u64 + 1,
            stream: stream.to_string(),
            version: *v,
            event_type: data.event_type,
            schema_version: data.schema_version,
            recorded_at: t,
            actor: actor.to_string(),
            correlation_id: None,
            causation_id: None,
            idempotency: None,
            payload_codec: CODEC_POSTCARD,
            payload: data.payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        if let Some(id) = stream.strip_prefix("case-") {
            match self.cases.get_mut(id) {
                Some(c) => c.apply(&event, t),
                None => {
                    let c = Case::start(&event, actor, t).expect("a case starts with submit");
                    self.cases.insert(id.to_string(), c);
                }
            }
        }
        self.records.push((rec, event));
    }

    /// Appends one script line.
    pub fn line(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [day, hhmm, id, verb, args @ ..] = words.as_slice() else {
            panic!("bad script line {line:?}")
        };
        let day: i64 = day.strip_prefix('d').unwrap().parse().unwrap();
        let t = at(day, hhmm);
        let stream = format!("case-{id}");
        let case = self.cases.get(*id).cloned();
        let c = || case.clone().unwrap_or_else(|| panic!("{line:?}: no case {id} yet"));
        let arg = |i: usize| args.get(i).copied();
        let policy = DeadlinePolicy::default();
        let ev = match *verb {
            "submit" => {
                let grid = arg(0).unwrap();
                let (community, street) = place(grid);
                // Ordinary limits: response 24 h, resolution 7 days, unless `due=<days>`.
                let days = args
                    .iter()
                    .find_map(|a| a.strip_prefix("due="))
                    .map(|d| d.parse::<i64>().unwrap())
                    .unwrap_or(7);
                Event::CaseSubmitted {
                    case_id: id.to_string(),
                    channel: gridcase_engine::domain::Channel::App,
                    kind: gridcase_engine::domain::RequestKind::Complaint,
                    category: arg(1)
                        .filter(|a| !a.contains('='))
                        .unwrap_or("sanitation")
                        .to_string(),
                    priority: if args.contains(&"urgent") {
                        Priority::Urgent
                    } else {
                        Priority::Normal
                    },
                    description: "路灯不亮".into(),
                    location: grid.to_string(),
                    grid: grid.to_string(),
                    micro_grid: None,
                    community: community.into(),
                    street: street.into(),
                    contact: None,
                    found_on_patrol: false,
                    response_due: t.plus_ms(policy.ordinary.response_minutes as i64 * 60_000),
                    resolution_due: t.plus_ms(days * DAY_MS),
                    hold_until: t.plus_ms(policy.ordinary.community_minutes as i64 * 60_000),
                }
            }
            "assign" => Event::CaseAssigned { worker: "gw1".into() },
            "reject" => Event::CaseRejected { reason: "not a city matter".into() },
            "withdraw" => Event::CaseWithdrawn { reason: "fixed by neighbours".into() },
            "merge" => Event::CaseMerged { into: arg(0).unwrap().into() },
            "escalate" => {
                let c = c();
                Event::CaseEscalated {
                    from: c.community.clone(),
                    to: c.street.clone(),
                    reason: if arg(0) == Some("deadline") {
                        HopReason::Deadline
                    } else {
                        HopReason::Manual
                    },
                    note: String::new(),
                    hold_until: t.plus_ms(DAY_MS),
                }
            }
            "dispatch" => {
                let c = c();
                let departments: Vec<String> =
                    arg(0).unwrap().split(',').map(str::to_string).collect();
                let reason = match arg(1) {
                    Some("deadline") => HopReason::Deadline,
                    _ if c.return_count > 0 && c.level == Level::Street => HopReason::Return,
                    _ => HopReason::Manual,
                };
                Event::CaseDispatched {
                    from: c.street.clone(),
                    lead: departments[0].clone(),
                    departments,
                    reason,
                    note: String::new(),
                    claim_due: t.plus_ms(DAY_MS),
                }
            }
            "claim" => Event::CaseClaimed { department: arg(0).unwrap().into() },
            "return" => {
                let c = c();
                let last = c.holders.len() == 1;
                Event::CaseReturned {
                    department: arg(0).unwrap().into(),
                    reason: "not ours".into(),
                    street_hold_until: last.then(|| t.plus_ms(DAY_MS)),
                }
            }
            "extend" => {
                let c = c();
                let days: i64 =
                    arg(0).unwrap().trim_start_matches('+').trim_end_matches('d').parse().unwrap();
                let until = c.resolution_due.plus_ms(days * DAY_MS);
                let unit = c.holders.first().map(|h| h.unit.clone()).unwrap_or_default();
                self.push(
                    &stream,
                    t,
                    "actor",
                    Event::ExtensionRequested { unit, until, reason: "works".into() },
                );
                Event::ExtensionApproved { by: "sup".into(), resolution_due: until }
            }
            "overdue" => {
                Event::CaseOverdue { what: OverdueKind::Resolution, due: c().resolution_due }
            }
            "claim-overdue" => Event::CaseOverdue {
                what: OverdueKind::Claim { department: arg(0).unwrap().into() },
                due: c().holder(arg(0).unwrap()).and_then(|h| h.claim_due).unwrap_or(t),
            },
            "resolve" => {
                let c = c();
                let unit = arg(0).map(str::to_string).unwrap_or_else(|| match c.level {
                    Level::Community => c.community.clone(),
                    Level::Street => c.street.clone(),
                    Level::Department => c.holders[0].unit.clone(),
                });
                let complete = c.holders.iter().all(|h| h.unit == unit || h.resolved);
                Event::CaseResolved { unit, note: "done".into(), complete }
            }
            "callback" => Event::CallbackRecorded {
                satisfaction: match arg(0).unwrap() {
                    "satisfied" => Satisfaction::Satisfied,
                    "basic" => Satisfaction::BasicallySatisfied,
                    "unsatisfied" => Satisfaction::Unsatisfied,
                    other => panic!("satisfaction {other}?"),
                },
                solved: arg(1) != Some("unsolved"),
                note: String::new(),
            },
            "reopen" => {
                let c = c();
                let holders = if c.last_resolvers.is_empty() {
                    c.holder_units()
                } else {
                    c.last_resolvers.clone()
                };
                let level = c.last_resolved_level;
                Event::CaseReopened {
                    reason: "still broken".into(),
                    level,
                    holders,
                    resolution_due: t.plus_ms(7 * DAY_MS),
                    hold_until: (level != Level::Department).then(|| t.plus_ms(DAY_MS)),
                }
            }
            "close" => Event::CaseClosed { note: String::new() },
            "supervise" => Event::CaseSupervised { by: "D".into(), note: "hurry".into() },
            other => panic!("unknown verb {other:?} in {line:?}"),
        };
        let actor = if *verb == "submit" { "resident:r1" } else { "actor" };
        self.push(&stream, t, actor, ev);
    }

    /// A set with every record applied.
    pub fn fold(&self) -> ProjectionSet {
        let mut set = ProjectionSet::default();
        for (rec, ev) in &self.records {
            set.apply_decoded(rec, ev);
        }
        set
    }
}

fn pct(r: &gridcase_projections::rates::Rate) -> String {
    match r.percent() {
        Some(p) => format!("{}/{}={p:.2}%", r.numerator, r.denominator),
        None => format!("{}/{}=n/a", r.numerator, r.denominator),
    }
}

/// Renders one view of a set as a text table.
///
/// Views: `rates <period> <kind:code>...`, `ranking <month> <kind>`,
/// `backlog d<day> HH:MM <kind:code>...`, `chains`, `overdue d<day> HH:MM`.
pub fn render(set: &ProjectionSet, view: &str) -> String {
    let words: Vec<&str> = view.split_whitespace().collect();
    let mut out = String::new();
    match words.as_slice() {
        ["rates", period, units @ ..] => {
            let report = set.rates_report(Period::parse(period).unwrap(), 98.5);
            for u in units {
                let (kind, code) = u.split_once(':').unwrap();
                let r = report
                    .units
                    .iter()
                    .find(|r| r.kind.as_str() == kind && r.code == code)
                    .unwrap();
                let c = &r.counts;
                let flag = match r.below_target {
                    None => "no-data",
                    Some(true) => "BELOW",
                    Some(false) => "ok",
                };
                writeln!(
                    out,
                    "{u} cases={} excluded={} resolution={} response={} satisfaction={} on_time={} return={} redo={} {flag}",
                    c.cases,
                    c.excluded,
                    pct(&r.resolution),
                    pct(&r.response),
                    pct(&r.satisfaction),
                    pct(&r.on_time),
                    pct(&r.return_rate),
                    pct(&r.redo),
                )
                .unwrap();
            }
        }
        ["ranking", month, kind] => {
            let ranking = set.ranking(Period::parse(month).unwrap(), 98.5).unwrap();
            let k = ranking.kinds.iter().find(|k| k.kind.as_str() == *kind).unwrap();
            for r in &k.ranked {
                writeln!(
                    out,
                    "{} {} resolution={} satisfaction={} on_time={}",
                    r.rank,
                    r.unit.code,
                    pct(&r.unit.resolution),
                    pct(&r.unit.satisfaction),
                    pct(&r.unit.on_time)
                )
                .unwrap();
            }
            writeln!(out, "no data: {}", k.no_data.join(",")).unwrap();
        }
        ["backlog", day, hhmm, units @ ..] => {
            let now = at(day.strip_prefix('d').unwrap().parse().unwrap(), hhmm);
            let report = set.backlog_report(now);
            for u in units {
                let (kind, code) = u.split_once(':').unwrap();
                let row = match kind {
                    "grid" => report.grids.iter().find(|r| r.code == code),
                    "community" => report.communities.iter().find(|r| r.code == code),
                    "street" => report.streets.iter().find(|r| r.code == code),
                    "district" => Some(&report.district),
                    _ => None,
                }
                .unwrap();
                let a = &row.aging;
                let prio: Vec<String> =
                    row.by_priority.iter().map(|(p, n)| format!("{p}:{n}")).collect();
                let cat: Vec<String> =
                    row.by_category.iter().map(|(p, n)| format!("{p}:{n}")).collect();
                writeln!(
                    out,
                    "{u} open={} in_progress={} awaiting={} overdue={} aging={}/{}/{}/{}/{} priority={} category={} solved_in_grid={}/{}",
                    row.open,
                    row.in_progress,
                    row.awaiting_callback,
                    row.overdue,
                    a.under_1_day,
                    a.days_1_to_3,
                    a.days_3_to_7,
                    a.days_7_to_15,
                    a.over_15_days,
                    prio.join(","),
                    cat.join(","),
                    row.solved_in_grid,
                    row.resolved
                )
                .unwrap();
            }
        }
        ["chains"] => {
            let report = set.chain_report();
            for s in &report.shapes {
                writeln!(out, "shape {} {}", s.shape, s.cases).unwrap();
            }
            for l in &report.levels {
                let m = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "level {} holds={} median<={} p90<={}",
                    l.level,
                    l.holds,
                    m(l.median_minutes),
                    m(l.p90_minutes)
                )
                .unwrap();
            }
            for r in report.communities.iter().chain(&report.streets).filter(|r| r.counts.cases > 0)
            {
                writeln!(
                    out,
                    "escalation {} {}/{}/{} rate={}",
                    r.code,
                    r.counts.cases,
                    r.counts.to_street,
                    r.counts.to_department,
                    pct(&r.rate)
                )
                .unwrap();
            }
            for r in report.categories.iter().filter(|r| r.counts.cases > 0) {
                writeln!(out, "category {} rate={}", r.code, pct(&r.rate)).unwrap();
            }
        }
        ["overdue", day, hhmm] => {
            let now = at(day.strip_prefix('d').unwrap().parse().unwrap(), hhmm);
            let report = set.overdue_report(now);
            writeln!(out, "total overdue={} near={}", report.overdue, report.near_due).unwrap();
            for h in &report.holders {
                let cases: Vec<String> =
                    h.cases.iter().map(|c| format!("{}:{:?}", c.case_id, c.state)).collect();
                writeln!(
                    out,
                    "{} {} open={} overdue={} near={} unclaimed={} [{}]",
                    h.unit,
                    h.level,
                    h.open,
                    h.overdue,
                    h.near_due,
                    h.unclaimed_past_due,
                    cases.join(" ")
                )
                .unwrap();
            }
        }
        _ => panic!("unknown view {view:?}"),
    }
    out
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The one data-driven helper: folds the script (after the fixture
/// organisation), renders `view`, and compares it with `expected` line by
/// line (whitespace-insensitive).
#[track_caller]
pub fn check(script: &str, view: &str, expected: &str) {
    let mut s = Script::with_org();
    for l in script.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        s.line(l);
    }
    let got = render(&s.fold(), view);
    assert_eq!(lines(&got), lines(expected), "\nview: {view}\ngot:\n{got}");
}

/// An engine on a fresh sled log in `dir`, with the fixture organisation loaded.
pub async fn engine(
    dir: &std::path::Path,
    start: Timestamp,
) -> (Arc<Engine>, ManualClock, Arc<dyn EventLog>) {
    let clock = ManualClock::new(start);
    let opts = SledOptions {
        durability: gridcase_engine::log::Durability::Buffered,
        ..SledOptions::default()
    };
    let log: Arc<dyn EventLog> =
        Arc::new(SledLog::open(dir, opts, Arc::new(clock.clone())).unwrap());
    let engine =
        Engine::new(log.clone(), Arc::new(clock.clone()), EngineOptions::default()).await.unwrap();
    engine.init_org(&ActorId::System, &OrgFile::parse(ORG).unwrap()).await.unwrap();
    (Arc::new(engine), clock, log)
}

/// One random step of an engine scenario: (case pick, action, clock advance).
pub type Op = (u8, u8, u16);

fn staff(unit: &str) -> &'static str {
    match unit {
        "C1" => "cs1",
        "C2" => "cs2",
        "C3" => "cs3",
        "S1" => "ss1",
        "S2" => "ss2",
        "D01" => "ds1",
        "D02" => "ds2",
        "D03" => "ds3",
        "G1" => "gw1",
        "G2" => "gw2",
        "G3" => "gw3",
        "G4" => "gw4",
        _ => "sup",
    }
}

/// Runs `command` on case `id` as `actor`, both given in their stored form;
/// an id that does not parse is an error like any other refused command.
async fn execute_as(
    engine: &Engine,
    actor: &str,
    id: &str,
    command: gridcase_engine::domain::Command,
) -> Result<CommandResult, Error> {
    let actor: ActorId = actor.parse()?;
    engine.execute(&actor, &CaseId::new(id)?, command, CommandOptions::default()).await
}

/// Drives the engine through `ops`: commands by the right actors (or
/// sometimes the wrong ones), clock moves and deadline ticks. Refused
/// commands are part of the game; any other error fails the test.
pub async fn drive(engine: &Engine, clock: &ManualClock, ops: &[Op]) {
    use gridcase_engine::domain::{Channel, Command, RequestKind, Status, Submission};
    let grids = ["G1", "G2", "G3", "G4"];
    let cats = ["lighting", "sanitation", "noise"];
    let depts = ["D01", "D02", "D03"];
    let mut ids: Vec<String> = Vec::new();
    for (i, &(pick, action, advance)) in ops.iter().enumerate() {
        let minutes = match action % 20 {
            19 => 20 * 24 * 60,
            _ => (advance % 240) as i64,
        };
        clock.advance(minutes * 60_000);
        let p = pick as usize;
        let result = if action % 20 < 3 || ids.is_empty() {
            let grid = grids[p % 4];
            let by_worker = pick % 5 == 0;
            let submission = Submission {
                channel: if by_worker { Channel::GridPatrol } else { Channel::App },
                kind: if pick % 7 == 0 {
                    RequestKind::Consultation
                } else {
                    RequestKind::Complaint
                },
                category: cats[p % 3].into(),
                priority: match pick % 9 {
                    0 => Priority::Urgent,
                    1 => Priority::Emergency,
                    _ => Priority::Normal,
                },
                description: format!("问题 {i}"),
                location: grid.into(),
                contact: None,
                point: None,
                media: Vec::new(),
                reporter: None,
            };
            let actor =
                if by_worker { staff(grid).to_string() } else { format!("resident:r{}", pick % 4) };
            let submitted = match actor.parse::<ActorId>() {
                Ok(actor) => engine.submit(&actor, submission, CommandOptions::default()).await,
                Err(e) => Err(e),
            };
            match submitted {
                Ok(r) => {
                    ids.push(r.case.id.clone());
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            // Work mostly on recent cases, so that they get far in their lifecycle.
            let id = ids[ids.len() - 1 - p % ids.len().min(4)].clone();
            let case = engine.case(&CaseId::new(id.as_str()).unwrap()).await.unwrap();
            let holder = case
                .holders
                .iter()
                .find(|h| !h.resolved)
                .map(|h| h.unit.clone())
                .unwrap_or_default();
            let community: String = staff(&case.community).into();
            let (command, actor): (Command, String) = match action % 20 {
                // The natural next step for the case's state, with variants by `pick`.
                3..=12 => match case.status {
                    Status::Submitted if pick % 2 == 0 => {
                        (Command::Assign { worker: staff(&case.grid).into() }, community)
                    }
                    Status::Submitted | Status::Assigned if pick % 3 == 0 => {
                        (Command::Escalate { reason: "needs the street".into() }, community)
                    }
                    Status::Submitted | Status::Assigned => {
                        (Command::Resolve { note: "fixed".into() }, community)
                    }
                    Status::Escalated if pick % 3 == 0 => {
                        (Command::Resolve { note: "fixed".into() }, staff(&case.street).into())
                    }
                    Status::Escalated => {
                        let mut departments = vec![depts[p % 3].to_string()];
                        if pick % 4 == 0 {
                            departments.push(depts[(p + 1) % 3].to_string());
                        }
                        (
                            Command::Dispatch { departments, lead: None, note: String::new() },
                            staff(&case.street).into(),
                        )
                    }
                    Status::Dispatched => match case.holders.iter().find(|h| !h.claimed) {
                        Some(h) => (Command::Claim, staff(&h.unit).into()),
                        None if pick % 7 == 0 => {
                            (Command::Return { reason: "not ours".into() }, staff(&holder).into())
                        }
                        None => (Command::Resolve { note: "fixed".into() }, staff(&holder).into()),
                    },
                    Status::Resolved => match &case.last_callback {
                        None => {
                            let satisfaction = [
                                Satisfaction::Satisfied,
                                Satisfaction::BasicallySatisfied,
                                Satisfaction::Unsatisfied,
                            ][p % 3];
                            (
                                Command::Callback {
                                    satisfaction,
                                    solved: pick % 5 != 0,
                                    note: String::new(),
                                },
                                community,
                            )
                        }
                        Some(cb) if cb.satisfaction == Satisfaction::Unsatisfied || !cb.solved => {
                            (Command::Reopen { reason: "still broken".into() }, community)
                        }
                        Some(_) => (Command::Close { note: String::new() }, community),
                    },
                    Status::Closed if pick % 4 == 0 => {
                        (Command::Reopen { reason: "complaint again".into() }, "sup".into())
                    }
                    _ => (Command::CheckDeadlines, "system".into()),
                },
                13 => (Command::Return { reason: "not ours".into() }, staff(&holder).into()),
                14 => (Command::Reject { reason: "not a city matter".into() }, community),
                15 => (Command::Withdraw { reason: "sorted".into() }, case.submitted_by.clone()),
                16 => {
                    let into = ids[(p + 1) % ids.len()].clone();
                    (Command::Merge { into }, community)
                }
                17 => (Command::Supervise { note: "hurry".into() }, "sup".into()),
                18 => {
                    let until = case.resolution_due.plus_ms(3 * DAY_MS);
                    let r = execute_as(
                        engine,
                        staff(&holder),
                        &id,
                        Command::RequestExtension { until, reason: "works".into() },
                    )
                    .await;
                    if r.is_ok() {
                        let approver =
                            if holder == case.community { staff(&case.street) } else { "sup" };
                        let approve = pick % 3 != 0;
                        let _ = execute_as(
                            engine,
                            approver,
                            &id,
                            Command::DecideExtension { approve, reason: "no".into() },
                        )
                        .await;
                    }
                    (Command::Supervise { note: "hurry".into() }, "sup".into())
                }
                _ => (Command::CheckDeadlines, "system".into()),
            };
            if matches!(command, Command::CheckDeadlines) {
                engine.tick(clock.now()).await.map(|_| ())
            } else {
                execute_as(engine, &actor, &id, command).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.is_client_error() => {
                if std::env::var("DRIVE_DEBUG").is_ok() {
                    eprintln!("op {i} action {}: {e}", action % 20);
                }
            }
            Err(e) => panic!("op {i}: {e}"),
        }
        if i % 4 == 3 {
            engine.tick(clock.now()).await.unwrap();
        }
    }
    engine.tick(clock.now()).await.unwrap();
}

/// A deterministic op list (for tests that are not property tests).
pub fn ops(seed: u64, n: usize) -> Vec<Op> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let b = (x >> 24).to_le_bytes();
            (b[0], b[1], u16::from_le_bytes([b[2], b[3]]))
        })
        .collect()
}

/// Copies the records of `log` recorded at or before `t` into a new log in
/// `dir`, each with its original time: "the log cut at T".
pub async fn cut_log(
    log: &Arc<dyn EventLog>,
    t: Timestamp,
    dir: &std::path::Path,
) -> Arc<dyn EventLog> {
    use gridcase_engine::log::{AppendRequest, EventData, ExpectedVersion, StreamId};
    let clock = ManualClock::new(Timestamp(0));
    let opts = SledOptions {
        durability: gridcase_engine::log::Durability::Buffered,
        ..SledOptions::default()
    };
    let copy: Arc<dyn EventLog> =
        Arc::new(SledLog::open(dir, opts, Arc::new(clock.clone())).unwrap());
    let all = log.read_all(1, usize::MAX).await.unwrap();
    for rec in all.into_iter().take_while(|r| r.recorded_at <= t) {
        clock.set(rec.recorded_at);
        let mut req = AppendRequest::new(
            StreamId::new(rec.stream.clone()).unwrap(),
            ExpectedVersion::Any,
            rec.actor.clone(),
            vec![EventData {
                event_type: rec.event_type.clone(),
                schema_version: rec.schema_version,
                payload_codec: rec.payload_codec,
                payload: rec.payload.clone(),
            }],
        );
        req.correlation_id = rec.correlation_id.clone();
        req.causation_id = rec.causation_id.clone();
        copy.append(req).await.unwrap();
    }
    copy
}

/// A two-worker runtime for property tests that drive the async engine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}
