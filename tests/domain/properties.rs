//! Property tests: random sequences of commands by random actors (the
//! fixture's staff, two residents and the engine) on a few cases, with the
//! clock moving and deadline ticks in between, never break the invariants:
//!
//! - a final case (closed, rejected, merged, withdrawn) takes no command
//!   except a district supervisor's reopen of a closed case;
//! - every escalation goes up the hierarchy: community → its own street →
//!   district departments (and down only by a return or a reopen);
//! - an open case is held by at least one unit of its level, with one lead;
//! - versions grow by exactly the number of events appended;
//! - folding each case's history gives the live state.
//!
//! The same sequences also run through a real `Engine`, which must decide
//! exactly as the pure model does; at the end the store is reopened, and the
//! whole log is replayed into a second, fresh store: every case is identical.
//!
//! Cases: `PROPTEST_CASES` (default 256) for the pure property,
//! `GRIDCASE_ENGINE_PROPTEST_CASES` (default 48) for the engine one.

use std::collections::BTreeMap;
use std::sync::Arc;

use gridcase::engine::domain::decide::Context;
use gridcase::engine::domain::{
    decide, Actor, Case, Command, Event, Level, Priority, Rule, Satisfaction, Status, Submission,
};
use gridcase::engine::log::{
    AppendRequest, EventData, EventLog, ExpectedVersion, SledLog, StreamId,
};
use gridcase::engine::org::{Role, UnitKind};
use gridcase::engine::time::{ManualClock, Timestamp};
use gridcase::engine::{Engine, EngineOptions, Error};
use proptest::prelude::*;

use super::fixture::*;

// ---------------------------------------------------------------- actions

#[derive(Clone, Debug)]
enum Action {
    Submit {
        who: u8,
        category: u8,
        location: u8,
        priority: u8,
    },
    Command {
        case: u8,
        kind: u8,
        who: u8,
        plausible: bool,
        arg: u8,
        arg2: u8,
        text: bool,
    },
    Advance {
        hours: u16,
    },
    Tick,
    /// The engine saves its open-case checkpoint (nothing happens in the
    /// model): the restart at the end of a run starts from the last one.
    Checkpoint,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(who, category, location, priority)| Action::Submit { who, category, location, priority }),
        14 => (any::<u8>(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.8), any::<u8>(), any::<u8>(), prop::bool::weighted(0.95))
            .prop_map(|(case, kind, who, plausible, arg, arg2, text)| Action::Command { case, kind, who, plausible, arg, arg2, text }),
        2 => (1u16..60).prop_map(|hours| Action::Advance { hours }),
        1 => Just(Action::Tick),
        1 => Just(Action::Checkpoint),
    ]
}

const LOCATIONS: [&str; 8] = [
    G111,
    "新村社区第一网格2号楼",
    G112,
    "32090200100200101",
    G211,
    "东进社区第二网格4号楼",
    "32090200100300102",
    "火星基地",
];

const GRID_WORKERS: [&str; 6] = ["gw111", "gw112", "gw121", "gw131", "gw211", "gw221"];
const DEPARTMENTS: [&str; 5] = [D01, D02, D03, D04, D05];

/// The index of [`RESIDENT`] among [`all_actor_ids`].
fn resident() -> u8 {
    all_actor_ids().iter().position(|a| a == RESIDENT).unwrap() as u8
}

fn pick<T: Clone>(items: &[T], i: u8) -> T {
    items[i as usize % items.len()].clone()
}

fn build_submission(category: u8, location: u8, priority: u8) -> Submission {
    let mut categories: Vec<String> = registry().categories.keys().cloned().collect();
    categories.push("unknown_category".into());
    let mut s = submission(&pick(&categories, category), pick(&LOCATIONS, location));
    s.priority = pick(Priority::ALL, priority);
    s
}

/// Actors with some relation to the case (its units' staff, the district, the
/// submitter): most random commands go to them so that cases get somewhere.
fn plausible_actors(case: &Case) -> Vec<String> {
    let mut units = vec![case.community.clone(), case.street.clone(), case.grid.clone()];
    units.extend(case.holder_units());
    units.extend(case.last_resolvers.iter().cloned());
    let mut v: Vec<String> = registry()
        .staff
        .values()
        .filter(|s| units.contains(&s.unit) || s.role == Role::DistrictSupervisor)
        .map(|s| s.id.clone())
        .collect();
    v.push(case.submitted_by.clone());
    v
}

fn build_command(case: &Case, ids: &[String], kind: u8, arg: u8, arg2: u8, text: bool) -> Command {
    let t = |s: &str| if text { s.to_string() } else { String::new() };
    match kind % 16 {
        0 => Command::Assign { worker: pick(&GRID_WORKERS, arg).into() },
        1 => Command::Reject { reason: t("不属于受理范围") },
        2 => {
            let mut targets = ids.to_vec();
            targets.push("GC0000099".into());
            Command::Merge { into: pick(&targets, arg) }
        }
        3 => Command::Withdraw { reason: t("已自行解决") },
        4 => Command::Escalate { reason: t("社区无法解决") },
        5 => {
            let departments: Vec<String> = (0..5)
                .filter(|i| arg & (1 << i) != 0)
                .map(|i| DEPARTMENTS[i].to_string())
                .collect();
            let lead = match arg2 % 3 {
                0 => None,
                1 => departments.first().cloned(),
                _ => Some(pick(&DEPARTMENTS, arg2).to_string()),
            };
            Command::Dispatch { departments, lead, note: t("请处置") }
        }
        6 => Command::Claim,
        7 => Command::Return { reason: t("不属于本单位职责") },
        8 => Command::RequestExtension {
            until: case.resolution_due.plus_ms((arg % 4) as i64 * DAY),
            reason: t("需要更多时间"),
        },
        9 => Command::DecideExtension { approve: arg % 2 == 0, reason: t("审核意见") },
        10 => Command::Supervise { note: t("请加快办理") },
        11 => Command::Resolve { note: t("已处理") },
        12 => Command::Callback {
            satisfaction: pick(Satisfaction::ALL, arg),
            solved: arg2 % 2 == 0,
            note: t("回访"),
        },
        13 => Command::Reopen { reason: t("问题依旧") },
        14 => Command::Close { note: t("办结") },
        _ => Command::CheckDeadlines,
    }
}

// ---------------------------------------------------------------- the model

/// What one decision did.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted(Vec<Event>),
    Refused(Rule),
}

/// The pure model: histories per case, decided with `decide` and folded.
#[derive(Default)]
struct Model {
    cases: BTreeMap<String, Vec<Recorded>>,
    now: Timestamp,
    accepted: usize,
}

impl Model {
    fn new() -> Model {
        Model { now: t0(), ..Model::default() }
    }

    fn case(&self, id: &str) -> Option<Case> {
        let h = self.cases.get(id)?;
        Case::fold(h.iter().map(|r| (&r.event, r.actor.as_str(), r.at)))
    }

    fn ids(&self) -> Vec<String> {
        self.cases.keys().cloned().collect()
    }

    fn decide(
        &self,
        id: &str,
        who: &str,
        command: &Command,
    ) -> Result<Vec<Event>, gridcase::engine::domain::Rejection> {
        let case = self.case(id);
        let merge_target_open = match command {
            Command::Merge { into } => {
                Some(into != id && self.case(into).is_some_and(|c| c.is_open()))
            }
            _ => None,
        };
        let ctx = Context { registry: registry(), now: self.now, case_id: id, merge_target_open };
        decide(case.as_ref(), command, &actor(who), &ctx)
    }

    /// Decides and records; checks the invariants of the step.
    fn run(&mut self, id: &str, who: &str, command: &Command) -> Outcome {
        let before = self.case(id);
        match self.decide(id, who, command) {
            Err(r) => {
                assert_eq!(r.state, before.as_ref().map(|c| c.status));
                Outcome::Refused(r.rule)
            }
            Ok(events) => {
                let history = self.cases.entry(id.to_string()).or_default();
                for e in &events {
                    history.push(Recorded {
                        event: e.clone(),
                        actor: who.to_string(),
                        at: self.now,
                    });
                }
                let after = self.case(id).expect("a recorded case folds");
                check_step(before.as_ref(), &actor(who), command, &events, &after, self.now);
                self.accepted += usize::from(!events.is_empty());
                Outcome::Accepted(events)
            }
        }
    }
}

/// The invariants of one accepted decision.
fn check_step(
    before: Option<&Case>,
    actor: &Actor,
    command: &Command,
    events: &[Event],
    after: &Case,
    now: Timestamp,
) {
    let reg = registry();
    let Some(before) = before else {
        assert!(
            matches!(events, [Event::CaseSubmitted { .. }]),
            "a case starts with one submission"
        );
        assert_eq!(after.version, 1);
        check_holders(after);
        return;
    };
    // Versions grow by exactly the events appended.
    assert_eq!(after.version, before.version + events.len() as u64);
    // A final case takes no command, except a supervisor's reopen of a closed case.
    if before.status.is_final() && !events.is_empty() {
        assert!(
            matches!(command, Command::Reopen { .. })
                && before.status == Status::Closed
                && actor.role == Role::DistrictSupervisor
                && !actor.system,
            "{:?} by {} changed a {} case",
            command.name(),
            actor.id,
            before.status
        );
    }
    // Replaying event by event: every hop goes up the hierarchy, or down by a return or reopen.
    let mut state = before.clone();
    for e in events {
        let level_before = state.level;
        match e {
            Event::CaseEscalated { from, to, .. } => {
                assert_eq!(level_before, Level::Community, "escalated from {level_before}");
                assert_eq!((from, to), (&state.community, &state.street));
                assert_eq!(
                    reg.unit(&state.community).unwrap().parent.as_deref(),
                    Some(to.as_str())
                );
                assert_eq!(reg.unit(to).unwrap().kind, UnitKind::Street);
            }
            Event::CaseDispatched { from, departments, lead, .. } => {
                assert!(
                    matches!(level_before, Level::Street | Level::Department),
                    "dispatched from {level_before}"
                );
                assert_eq!(from, &state.street);
                assert!(!departments.is_empty());
                for d in departments {
                    assert_eq!(reg.unit(d).unwrap().kind, UnitKind::Department);
                }
                assert!(departments.contains(lead) || state.holder(lead).is_some());
            }
            Event::CaseReturned { department, .. } => {
                assert_eq!(level_before, Level::Department);
                assert!(state.holder(department).is_some());
            }
            Event::CaseReopened { .. } => {
                assert!(
                    matches!(state.status, Status::Resolved | Status::Closed),
                    "reopened from {}",
                    state.status
                );
            }
            Event::CaseSubmitted { .. } => panic!("a second submission in a case stream"),
            _ => {}
        }
        state.apply(e, now);
        let rank = |l: Level| match l {
            Level::Community => 0,
            Level::Street => 1,
            Level::Department => 2,
        };
        if rank(state.level) < rank(level_before) {
            assert!(
                matches!(e, Event::CaseReturned { .. } | Event::CaseReopened { .. }),
                "{} went down from {level_before} to {}",
                e.event_type(),
                state.level
            );
        }
    }
    assert_eq!(&state, after, "applying the events one by one == folding the history");
    check_holders(after);
}

/// An open case is held by at least one unit of its level, exactly one leading.
fn check_holders(c: &Case) {
    if !c.is_open() {
        return;
    }
    assert!(!c.holders.is_empty(), "open case {} is held by nobody", c.id);
    assert_eq!(
        c.holders.iter().filter(|h| h.lead).count(),
        1,
        "leads of {}: {:?}",
        c.id,
        c.holders
    );
    let reg = registry();
    for h in &c.holders {
        match c.level {
            Level::Community => assert_eq!(h.unit, c.community),
            Level::Street => assert_eq!(h.unit, c.street),
            Level::Department => assert_eq!(reg.unit(&h.unit).unwrap().kind, UnitKind::Department),
        }
    }
    if c.status != Status::Resolved {
        assert!(
            c.holders.iter().any(|h| !h.resolved),
            "open case {} has no holder left with work",
            c.id
        );
    }
}

// ---------------------------------------------------------------- pure runs

fn run_pure(actions: &[Action]) -> Model {
    let mut m = Model::new();
    let mut next_id = 0u64;
    let all = all_actor_ids();
    for a in actions {
        match *a {
            Action::Submit { who, category, location, priority } => {
                let who = pick(&all, who);
                let id = format!("GC{:07}", next_id + 1);
                if let Outcome::Accepted(_) = m.run(
                    &id,
                    &who,
                    &Command::Submit(build_submission(category, location, priority)),
                ) {
                    next_id += 1;
                }
            }
            Action::Command { case, kind, who, plausible, arg, arg2, text } => {
                let ids = m.ids();
                if ids.is_empty() {
                    continue;
                }
                let id = pick(&ids, case);
                let c = m.case(&id).unwrap();
                let who =
                    if plausible { pick(&plausible_actors(&c), who) } else { pick(&all, who) };
                m.run(&id, &who, &build_command(&c, &ids, kind, arg, arg2, text));
            }
            Action::Advance { hours } => m.now = m.now.plus_ms(hours as i64 * HOUR),
            Action::Tick => {
                for id in m.ids() {
                    m.run(&id, SYSTEM, &Command::CheckDeadlines);
                }
            }
            Action::Checkpoint => {}
        }
    }
    m
}

fn pure_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Engine runs cost ~100× a pure run, so they have their own knob.
fn engine_cases() -> u32 {
    std::env::var("GRIDCASE_ENGINE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: pure_cases(), max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_never_break_the_invariants(
        first in (0u8..7, 0u8..7),
        actions in prop::collection::vec(action(), 1..120),
    ) {
        // Always start with one valid case.
        let mut all = vec![Action::Submit { who: resident(), category: first.0, location: first.1, priority: 0 }];
        all.extend(actions);
        let m = run_pure(&all);
        for id in m.ids() {
            check_holders(&m.case(&id).unwrap());
        }
    }
}

/// The generator reaches deep states (the property is not vacuous).
#[test]
fn random_runs_reach_every_status() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut accepted = 0;
    for _ in 0..60 {
        let tree = prop::collection::vec(action(), 150).new_tree(&mut runner).unwrap();
        let mut actions =
            vec![Action::Submit { who: resident(), category: 3, location: 0, priority: 0 }];
        actions.extend(tree.current());
        let m = run_pure(&actions);
        accepted += m.accepted;
        for id in m.ids() {
            let c = m.case(&id).unwrap();
            seen.insert(c.status);
        }
    }
    assert!(accepted > 500, "only {accepted} accepted commands");
    for s in [
        Status::Submitted,
        Status::Escalated,
        Status::Dispatched,
        Status::Resolved,
        Status::Closed,
        Status::Withdrawn,
    ] {
        assert!(seen.contains(&s), "no run reached {s}: {seen:?}");
    }
}

// ---------------------------------------------------------------- through the engine

fn outcome_of(
    r: Result<gridcase::engine::engine::CommandResult, Error>,
) -> (Outcome, Option<Case>) {
    match r {
        Ok(r) => {
            assert!(!r.deduplicated);
            if let Some(o) = r.outcome {
                assert_eq!(o.last_version, r.case.version, "the outcome's version is the case's");
                assert_eq!(o.last_position - o.first_position + 1, r.events.len() as u64);
            }
            (Outcome::Accepted(r.events), Some(Case::clone(&r.case)))
        }
        Err(Error::Rejected(r)) => (Outcome::Refused(r.rule), None),
        Err(e) => panic!("unexpected engine error: {e}"),
    }
}

async fn run_with_engine(actions: &[Action]) {
    let h = TestEngine::start().await;
    let mut m = Model::new();
    let all = all_actor_ids();
    for a in actions {
        match *a {
            Action::Submit { who, category, location, priority } => {
                let who = pick(&all, who);
                let s = build_submission(category, location, priority);
                let head = h.head();
                let r = h.engine.submit(&actor_id(&who), s.clone(), Default::default()).await;
                let id =
                    r.as_ref().map(|r| r.case.id.clone()).unwrap_or_else(|_| "GC9999999".into());
                let (got, live) = outcome_of(r);
                assert_eq!(got, m.run(&id, &who, &Command::Submit(s)), "submit by {who}");
                if live.is_none() {
                    assert_eq!(h.head(), head);
                }
            }
            Action::Command { case, kind, who, plausible, arg, arg2, text } => {
                let ids = m.ids();
                if ids.is_empty() {
                    continue;
                }
                let id = pick(&ids, case);
                let c = m.case(&id).unwrap();
                let who =
                    if plausible { pick(&plausible_actors(&c), who) } else { pick(&all, who) };
                let command = build_command(&c, &ids, kind, arg, arg2, text);
                let head = h.head();
                let (got, live) = outcome_of(h.run(&id, &who, command.clone()).await);
                let want = m.run(&id, &who, &command);
                assert_eq!(got, want, "{} by {who} on {id}", command.name());
                match live {
                    Some(live) => assert_eq!(
                        live,
                        m.case(&id).unwrap(),
                        "engine state after {}",
                        command.name()
                    ),
                    None => assert_eq!(h.head(), head, "a refused command appended"),
                }
            }
            Action::Advance { hours } => {
                m.now = m.now.plus_ms(hours as i64 * HOUR);
                h.set_time(m.now);
            }
            Action::Tick => {
                h.engine.tick(m.now).await.unwrap();
                for id in m.ids() {
                    m.run(&id, SYSTEM, &Command::CheckDeadlines);
                }
            }
            Action::Checkpoint => {
                h.engine.save_checkpoint().await.unwrap();
            }
        }
    }
    // Live, folded and model states agree for every case.
    let mut states = BTreeMap::new();
    for id in m.ids() {
        let live = h.engine.case(&case_id(&id)).await.unwrap();
        assert_eq!(*live, m.case(&id).unwrap(), "{id}");
        assert_eq!(h.folded(&id).await, *live, "{id}: history + fold");
        states.insert(id, live);
    }
    // A restart rebuilds the same states.
    let h = h.reopen().await;
    h.engine.catch_up().await.unwrap();
    for (id, want) in &states {
        assert_eq!(&h.engine.case(&case_id(id)).await.unwrap(), want, "{id} after a restart");
    }
    let open: Vec<String> = states.values().filter(|c| c.is_open()).map(|c| c.id.clone()).collect();
    assert_eq!(h.engine.open_case_ids(), open, "open cases after a restart");
    // The whole log replayed into a fresh store yields the same states and registry.
    let (fresh, _dir) = replay_into_fresh_store(h.log().as_ref()).await;
    assert_eq!(*fresh.registry(), *h.engine.registry());
    for (id, want) in &states {
        assert_eq!(&fresh.case(&case_id(id)).await.unwrap(), want, "{id} in the replayed store");
    }
}

/// Copies every record of `log`, in order, into a new store (same streams,
/// versions, actors, times and payloads) and opens an engine on it.
async fn replay_into_fresh_store(log: &dyn EventLog) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let fresh = SledLog::open(dir.path(), test_sled_options(), Arc::new(clock.clone())).unwrap();
    let mut from = 1;
    loop {
        let page = log.read_all(from, 512).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for rec in page {
            clock.set(rec.recorded_at);
            let expected = if rec.version == 1 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(rec.version - 1)
            };
            let data = EventData {
                event_type: rec.event_type.clone(),
                schema_version: rec.schema_version,
                payload_codec: rec.payload_codec,
                payload: rec.payload.clone(),
            };
            let mut req = AppendRequest::new(
                StreamId::new(rec.stream.clone()).unwrap(),
                expected,
                rec.actor.clone(),
                vec![data],
            );
            req.correlation_id = rec.correlation_id.clone();
            req.causation_id = rec.causation_id.clone();
            let out = fresh.append(req).await.unwrap().outcome;
            assert_eq!(
                (out.first_position, out.last_version, out.recorded_at),
                (rec.position, rec.version, rec.recorded_at)
            );
        }
    }
    let engine =
        Engine::new(Arc::new(fresh), Arc::new(clock), EngineOptions::default()).await.unwrap();
    (engine, dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: engine_cases(), max_shrink_iters: 100, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_decides_as_the_model_and_replays_to_the_same_states(
        first in (0u8..7, 0u8..7),
        actions in prop::collection::vec(action(), 1..80),
    ) {
        let mut all = vec![Action::Submit { who: resident(), category: first.0, location: first.1, priority: 0 }];
        all.extend(actions);
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run_with_engine(&all));
    }
}
