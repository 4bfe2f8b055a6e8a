//! The case-domain test fixture: a small but real organisation
//! (`tests/fixtures/org_small.toml`), named units and staff, a
//! given/when/then harness over the pure [`decide`] function in the style of
//! cqrs-es, [`Story`] for building histories by deciding real commands, and
//! [`TestEngine`]: a real [`Engine`] on a temporary sled log with a
//! [`ManualClock`], able to replay a [`Story`] and to restart.

use std::sync::{Arc, OnceLock};

use gridcase::engine::domain::decide::Context;
use gridcase::engine::domain::{
    decide, Actor, ActorId, Case, CaseId, Channel, Command, Contact, Event, Priority, Rejection,
    RequestKind, Rule, Submission,
};
use gridcase::engine::engine::{CommandOptions, CommandResult};
use gridcase::engine::log::{Durability, EventLog, Position, SledLog, SledOptions};
use gridcase::engine::org::{OrgFile, Registry};
use gridcase::engine::time::{ManualClock, Timestamp, HOUR_MS};
use gridcase::engine::{Engine, EngineOptions, Error};

/// The organisation file the domain suites run on.
pub const ORG_TOML: &str = include_str!("../fixtures/org_small.toml");

// Units.
pub const DISTRICT: &str = "320902";
/// 文峰街道.
pub const S1: &str = "320902001";
/// 先锋街道.
pub const S2: &str = "320902002";
/// 新村社区 (文峰街道).
pub const C11: &str = "320902001001";
/// 大庆社区 (文峰街道).
pub const C12: &str = "320902001002";
/// 五星社区 (先锋街道).
pub const C21: &str = "320902002001";
/// 新村社区第一网格.
pub const G111: &str = "320902001001001";
/// 新村社区第二网格.
pub const G112: &str = "320902001001002";
/// 五星社区第一网格.
pub const G211: &str = "320902002001001";
/// 城市管理局.
pub const D01: &str = "D01";
/// 公安分局.
pub const D02: &str = "D02";
/// 司法局.
pub const D03: &str = "D03";
/// 生态环境局.
pub const D04: &str = "D04";
/// 住房和城乡建设局.
pub const D05: &str = "D05";

/// The resident who reports in most stories.
pub const RESIDENT: &str = "resident:li-13800000001";
/// Another resident.
pub const OTHER_RESIDENT: &str = "resident:wang-13900000002";
/// The engine's own actor.
pub const SYSTEM: &str = "system";

/// One minute and one hour in milliseconds.
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = HOUR_MS;
pub const DAY: i64 = 24 * HOUR;

/// The id the first submission gets in a fresh engine (and in a [`Story`]).
pub const CASE_ID: &str = "GC0000001";
/// The id of a second case (merge target).
pub const OTHER_CASE_ID: &str = "GC0000002";

/// Monday 2 March 2026, 08:00 UTC: the start of every story.
pub fn t0() -> Timestamp {
    Timestamp::parse("2026-03-02T08:00:00Z").expect("valid time")
}

/// `t0()` plus `ms`.
pub fn at(ms: i64) -> Timestamp {
    t0().plus_ms(ms)
}

/// The parsed organisation file.
pub fn org_file() -> OrgFile {
    OrgFile::parse(ORG_TOML).expect("the fixture organisation parses")
}

/// The registry folded from the organisation file's events.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut reg = Registry::default();
        for e in org_file().events().expect("fixture events") {
            reg.apply(&e);
            reg.version += 1;
        }
        reg.reindex();
        reg
    })
}

/// Resolves an actor id as the engine does: staff, `resident:…` or `system`.
pub fn actor(id: &str) -> Actor {
    if id == SYSTEM {
        return Actor::system();
    }
    if let Some(r) = id.strip_prefix("resident:") {
        return Actor::resident(r);
    }
    let s = registry().staff.get(id).unwrap_or_else(|| panic!("no staff {id:?} in the fixture"));
    Actor { id: s.id.clone(), role: s.role, unit: Some(s.unit.clone()), system: false }
}

/// The typed id of an actor given by its stored form (a staff id,
/// `resident:…` or `system`), as test tables write them.
pub fn actor_id(id: &str) -> ActorId {
    id.parse().unwrap_or_else(|e| panic!("actor id {id:?}: {e}"))
}

/// The typed id of a case given as text.
pub fn case_id(id: &str) -> CaseId {
    CaseId::new(id).unwrap_or_else(|e| panic!("case id {id:?}: {e}"))
}

/// Every actor id of the fixture: all staff, two residents and the system.
pub fn all_actor_ids() -> Vec<String> {
    let mut v: Vec<String> = registry().staff.keys().cloned().collect();
    v.push(RESIDENT.into());
    v.push(OTHER_RESIDENT.into());
    v.push(SYSTEM.into());
    v
}

/// A submission of `category` at `location`, from the app, with contact.
pub fn submission(category: &str, location: &str) -> Submission {
    Submission {
        channel: Channel::App,
        kind: RequestKind::Complaint,
        category: category.into(),
        priority: Priority::Normal,
        description: "小区东门路灯连续三晚不亮，老人夜间出行不便".into(),
        location: location.into(),
        contact: Some(Contact { name: "李女士".into(), phone: "13800000001".into() }),
        point: None,
        media: Vec::new(),
        reporter: None,
    }
}

/// The standard report: a broken street light at 新村社区第一网格2号楼 (G111).
pub fn street_light() -> Submission {
    submission("street_light", "新村社区第一网格2号楼")
}

/// One recorded event: what the pure harness folds.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The event.
    pub event: Event,
    /// Who caused it.
    pub actor: String,
    /// When it was recorded.
    pub at: Timestamp,
}

fn fold(history: &[Recorded]) -> Option<Case> {
    Case::fold(history.iter().map(|r| (&r.event, r.actor.as_str(), r.at)))
}

/// The merge target flag a decision gets by default: open unless told otherwise.
fn default_merge_flag(command: &Command) -> Option<bool> {
    matches!(command, Command::Merge { .. }).then_some(true)
}

/// Given a history (the case's events so far)...
#[derive(Clone, Debug)]
pub struct Given {
    history: Vec<Recorded>,
    now: Timestamp,
    merge_target_open: Option<bool>,
}

/// ...given these events, all recorded at `t0()` by [`RESIDENT`] (the
/// submitter); decisions are taken at `t0()` unless [`Given::at`] says otherwise.
pub fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let history = events
        .into_iter()
        .map(|event| Recorded { event, actor: RESIDENT.into(), at: t0() })
        .collect();
    Given { history, now: t0(), merge_target_open: None }
}

/// Given no case at all (a submission, or a command on a missing case).
pub fn given_no_case() -> Given {
    given(Vec::new())
}

impl Given {
    /// Decide at `now`.
    pub fn at(mut self, now: Timestamp) -> Given {
        self.now = now;
        self
    }

    /// For a merge: whether the target exists and is open (default: yes).
    pub fn merge_target_open(mut self, open: bool) -> Given {
        self.merge_target_open = Some(open);
        self
    }

    /// The case the history folds to.
    pub fn case(&self) -> Option<Case> {
        fold(&self.history)
    }

    /// ...when `actor_id` sends `command`...
    pub fn when(self, actor_id: &str, command: Command) -> Then {
        self.when_actor(&actor(actor_id), command)
    }

    /// ...when a hand-made actor sends `command`...
    pub fn when_actor(self, actor: &Actor, command: Command) -> Then {
        let case = self.case();
        let registry = registry();
        let merge = self.merge_target_open.or_else(|| default_merge_flag(&command));
        let ctx = Context { registry, now: self.now, case_id: CASE_ID, merge_target_open: merge };
        let result = decide(case.as_ref(), &command, actor, &ctx);
        Then { case, command, now: self.now, result }
    }
}

/// ...then expect these events, or this rejection.
#[derive(Debug)]
pub struct Then {
    case: Option<Case>,
    command: Command,
    now: Timestamp,
    result: Result<Vec<Event>, Rejection>,
}

impl Then {
    /// Asserts the decision produced exactly `expected`; returns the case
    /// after folding them in (recorded at the decision time).
    pub fn then_expect_events(self, expected: Vec<Event>) -> Option<Case> {
        let events = match self.result {
            Ok(e) => e,
            Err(r) => panic!("expected events {expected:?}, got rejection: {r}"),
        };
        assert_eq!(events, expected, "events of {:?}", self.command);
        let mut case = self.case;
        for e in &events {
            match &mut case {
                Some(c) => c.apply(e, self.now),
                None => case = Case::start(e, "tester", self.now),
            }
        }
        case
    }

    /// Asserts the decision was accepted (any events); returns them.
    pub fn then_accept(self) -> Vec<Event> {
        match self.result {
            Ok(e) => e,
            Err(r) => panic!("expected {:?} to be accepted, got rejection: {r}", self.command),
        }
    }

    /// Asserts the decision was refused by `rule`, and that the rejection
    /// names the command, the case and its state.
    pub fn then_expect_rejection(self, rule: Rule) -> Rejection {
        let r = match self.result {
            Ok(e) => {
                panic!("expected {:?} to be refused ({rule:?}), got events {e:?}", self.command)
            }
            Err(r) => r,
        };
        assert_eq!(r.rule, rule, "rule of the rejection of {:?}: {r}", self.command);
        assert_eq!(r.command, self.command.name());
        assert_eq!(r.case_id.as_deref(), Some(CASE_ID));
        assert_eq!(r.state, self.case.as_ref().map(|c| c.status), "state named by {r}");
        assert!(!r.detail.is_empty());
        r
    }
}

/// One command of a [`Story`] as it was decided.
#[derive(Clone, Debug)]
pub struct Step {
    /// Decision time.
    pub at: Timestamp,
    /// Actor id.
    pub actor: String,
    /// The command (`Submit` for the first step).
    pub command: Command,
    /// What it decided.
    pub events: Vec<Event>,
}

/// A case history built by deciding real commands with the pure function,
/// so that tests start from states the rules can actually reach.
#[derive(Clone, Debug)]
pub struct Story {
    history: Vec<Recorded>,
    steps: Vec<Step>,
    now: Timestamp,
}

impl Story {
    /// `actor_id` submits at `t0()`; the case is [`CASE_ID`].
    pub fn submit(actor_id: &str, submission: Submission) -> Story {
        let s = Story { history: Vec::new(), steps: Vec::new(), now: t0() };
        s.by(actor_id, Command::Submit(submission))
    }

    /// The standard story start: [`RESIDENT`] reports [`street_light`].
    pub fn reported() -> Story {
        Story::submit(RESIDENT, street_light())
    }

    /// Moves the story's clock forward.
    pub fn after(mut self, ms: i64) -> Story {
        self.now = self.now.plus_ms(ms);
        self
    }

    /// Moves the story's clock to `t` (never backwards).
    pub fn until(mut self, t: Timestamp) -> Story {
        assert!(t >= self.now, "a story's clock never goes back");
        self.now = t;
        self
    }

    /// `actor_id` sends `command` now; panics if it is refused.
    pub fn by(mut self, actor_id: &str, command: Command) -> Story {
        let case = self.case_opt();
        let ctx = Context {
            registry: registry(),
            now: self.now,
            case_id: CASE_ID,
            merge_target_open: default_merge_flag(&command),
        };
        let events = decide(case.as_ref(), &command, &actor(actor_id), &ctx)
            .unwrap_or_else(|r| panic!("story step {:?} by {actor_id} refused: {r}", command));
        for e in &events {
            self.history.push(Recorded { event: e.clone(), actor: actor_id.into(), at: self.now });
        }
        self.steps.push(Step { at: self.now, actor: actor_id.into(), command, events });
        self
    }

    /// The system checks deadlines now.
    pub fn tick(self) -> Story {
        self.by(SYSTEM, Command::CheckDeadlines)
    }

    fn case_opt(&self) -> Option<Case> {
        fold(&self.history)
    }

    /// The case now.
    pub fn case(&self) -> Case {
        self.case_opt().expect("a story starts with a submission")
    }

    /// The story's clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// All events so far.
    pub fn events(&self) -> Vec<Event> {
        self.history.iter().map(|r| r.event.clone()).collect()
    }

    /// The commands so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The history as a [`Given`], deciding at the story's clock.
    pub fn given(&self) -> Given {
        Given { history: self.history.clone(), now: self.now, merge_target_open: None }
    }
}

/// Sled options for tests: no fsync per append (the suites restart by
/// dropping the log, which flushes), a small cache.
pub fn test_sled_options() -> SledOptions {
    SledOptions {
        durability: Durability::Buffered,
        cache_capacity: 8 * 1024 * 1024,
        ..SledOptions::default()
    }
}

/// A real engine on a temporary sled log, with a manual clock at `t0()`.
pub struct TestEngine {
    /// The engine.
    pub engine: Engine,
    /// The clock shared by the engine and its log.
    pub clock: ManualClock,
    dir: tempfile::TempDir,
}

impl TestEngine {
    /// A fresh store with the fixture organisation loaded.
    pub async fn start() -> TestEngine {
        TestEngine::start_with(&org_file()).await
    }

    /// A fresh store with another organisation loaded.
    pub async fn start_with(org: &OrgFile) -> TestEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(t0());
        let engine = open_engine(dir.path(), &clock).await;
        engine.init_org(&ActorId::System, org).await.expect("init org");
        TestEngine { engine, clock, dir }
    }

    /// A fresh store with `org` loaded, as a shared engine (what the
    /// simulator drives); the directory lives as long as the returned guard.
    pub async fn shared_with(org: &OrgFile) -> (Arc<Engine>, ManualClock, tempfile::TempDir) {
        let TestEngine { engine, clock, dir } = TestEngine::start_with(org).await;
        (Arc::new(engine), clock, dir)
    }

    /// A restart: drops the engine and its log, opens the same directory again.
    pub async fn reopen(self) -> TestEngine {
        let TestEngine { engine, clock, dir } = self;
        drop(engine);
        let engine = open_engine(dir.path(), &clock).await;
        TestEngine { engine, clock, dir }
    }

    /// The log's head position.
    pub fn head(&self) -> Position {
        self.engine.log().head().position
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        self.engine.log()
    }

    /// Sets the clock (never backwards).
    pub fn set_time(&self, t: Timestamp) {
        self.clock.set(t);
    }

    /// Submits; panics on failure. Returns the new case id.
    pub async fn submit(&self, actor: &str, s: Submission) -> String {
        let r = self.engine.submit(&actor_id(actor), s, CommandOptions::default()).await;
        r.unwrap_or_else(|e| panic!("submit by {actor} failed: {e}")).case.id.clone()
    }

    /// Runs a command. An actor or case id that does not parse is refused
    /// as the API refuses it ([`Error::InvalidInput`]), before the engine.
    pub async fn run(
        &self,
        id: &str,
        actor: &str,
        command: Command,
    ) -> Result<CommandResult, Error> {
        let actor: ActorId = actor.parse()?;
        let id = CaseId::new(id)?;
        self.engine.execute(&actor, &id, command, CommandOptions::default()).await
    }

    /// Runs a command that must succeed.
    pub async fn ok(&self, id: &str, actor_id: &str, command: Command) -> CommandResult {
        let name = command.name();
        self.run(id, actor_id, command)
            .await
            .unwrap_or_else(|e| panic!("{name} by {actor_id} failed: {e}"))
    }

    /// Runs a command that must be refused by `rule`; checks nothing was appended.
    pub async fn refused(
        &self,
        id: &str,
        actor_id: &str,
        command: Command,
        rule: Rule,
    ) -> Rejection {
        let before = self.engine.log().head();
        let name = command.name();
        let r = match self.run(id, actor_id, command).await {
            Err(Error::Rejected(r)) => r,
            Ok(r) => {
                panic!("{name} by {actor_id} should be refused ({rule:?}), appended {:?}", r.events)
            }
            Err(e) => panic!("{name} by {actor_id} should be refused ({rule:?}), failed: {e}"),
        };
        assert_eq!(r.rule, rule, "{r}");
        assert_eq!(self.engine.log().head(), before, "a refused {name} appended something");
        r
    }

    /// A case rebuilt from its history in the log (`history` + `Case::fold`).
    pub async fn folded(&self, id: &str) -> Case {
        let h = self.engine.history(&case_id(id)).await.expect("history");
        Case::fold(h.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at))).expect("fold")
    }

    /// The event types of a case's history, in order.
    pub async fn event_types(&self, id: &str) -> Vec<String> {
        let h = self.engine.history(&case_id(id)).await.expect("history");
        h.into_iter().map(|(_, r)| r.event_type).collect()
    }

    /// Replays a [`Story`] through the engine, setting the clock to each
    /// step's time, and checks every step decided the same events as the
    /// pure function did. Returns the case id ([`CASE_ID`] in a fresh engine).
    pub async fn play(&self, story: &Story) -> String {
        let mut id = String::new();
        for step in story.steps() {
            self.set_time(step.at);
            let result = match &step.command {
                Command::Submit(s) => {
                    let r = self
                        .engine
                        .submit(&actor_id(&step.actor), s.clone(), CommandOptions::default())
                        .await;
                    let r = r.unwrap_or_else(|e| panic!("replayed submit failed: {e}"));
                    id = r.case.id.clone();
                    assert_eq!(id, CASE_ID, "play() needs a fresh engine");
                    r
                }
                Command::Merge { into } => {
                    // The merge target must exist and be open in the engine too.
                    if matches!(self.engine.case(&case_id(into)).await, Err(Error::NotFound(_))) {
                        assert_eq!(self.submit(RESIDENT, street_light()).await, *into);
                    }
                    self.ok(&id, &step.actor, step.command.clone()).await
                }
                Command::CheckDeadlines => {
                    let before = self.engine.case(&case_id(&id)).await.expect("case").version;
                    self.engine.tick(step.at).await.expect("tick");
                    let h = self.engine.history(&case_id(&id)).await.expect("history");
                    let events =
                        h.into_iter().skip(before as usize).map(|(e, _)| e).collect::<Vec<_>>();
                    assert_eq!(events, step.events, "replayed tick at {}", step.at);
                    continue;
                }
                other => self.ok(&id, &step.actor, other.clone()).await,
            };
            assert_eq!(result.events, step.events, "replayed {:?} by {}", step.command, step.actor);
        }
        assert_eq!(
            *self.engine.case(&case_id(&id)).await.expect("case"),
            story.case(),
            "engine state after play"
        );
        id
    }
}

async fn open_engine(dir: &std::path::Path, clock: &ManualClock) -> Engine {
    let log =
        SledLog::open(dir, test_sled_options(), Arc::new(clock.clone())).expect("open sled log");
    Engine::new(Arc::new(log), Arc::new(clock.clone()), EngineOptions::default())
        .await
        .expect("engine")
}

#[test]
fn the_fixture_is_a_real_organisation() {
    use gridcase::engine::domain::DeadlineClass;
    use gridcase::engine::org::{Role, UnitKind};
    let reg = registry();
    let count = |k| reg.units_of(k).count();
    assert_eq!(count(UnitKind::District), 1);
    assert_eq!(count(UnitKind::Street), 2);
    assert!(reg.units_of(UnitKind::Street).all(|s| {
        let n = reg
            .units_of(UnitKind::Community)
            .filter(|c| c.parent.as_deref() == Some(&s.code))
            .count();
        (2..=3).contains(&n)
    }));
    assert!(count(UnitKind::Grid) >= 8 && count(UnitKind::MicroGrid) >= 15);
    assert_eq!(count(UnitKind::Department), 5);
    for class in [
        DeadlineClass::Emergency,
        DeadlineClass::Utilities,
        DeadlineClass::Ordinary,
        DeadlineClass::Complex,
    ] {
        assert!(
            reg.categories.values().any(|c| c.class == class),
            "no category of class {class:?}"
        );
    }
    for role in [
        Role::GridWorker,
        Role::CommunityStaff,
        Role::StreetStaff,
        Role::DepartmentStaff,
        Role::DistrictSupervisor,
        Role::Auditor,
    ] {
        let units: std::collections::BTreeSet<_> =
            reg.staff.values().filter(|s| s.role == role).map(|s| s.unit.as_str()).collect();
        let min = if matches!(role, Role::DistrictSupervisor | Role::Auditor) { 1 } else { 2 };
        assert!(units.len() >= min, "role {role:?} is in too few units: {units:?}");
    }
    // Chinese names round-trip and addresses resolve to micro-grids.
    assert_eq!(reg.unit(C11).expect("unit").name, "新村社区");
    assert_eq!(reg.unit(D05).expect("unit").name, "住房和城乡建设局");
    let (grid, micro) = reg.resolve_location("盐城市亭湖区新村社区第一网格2号楼").expect("address");
    assert_eq!((grid.as_str(), micro.as_deref()), (G111, Some("32090200100100102")));
    assert!(reg.is_within(G211, S2) && !reg.is_within(G211, S1));
    assert_eq!(actor("sup").role, Role::DistrictSupervisor);
    assert_eq!(all_actor_ids().len(), reg.staff.len() + 3);
    assert_eq!(reg.unit(C12).expect("unit").parent.as_deref(), Some(S1));
}
