//! The [`Engine`]: what a portal embeds. It loads a case, decides a command
//! against it, and appends the resulting events with optimistic concurrency,
//! retrying on a conflict; it keeps the registry and the open cases in
//! memory and fires deadline escalations on [`Engine::tick`].
//!
//! **Architecture Invariant:** the engine writes to the log only through
//! [`EventLog::append`] with an exact expected version, so two engines (or
//! two processes) on one store can never both act on the same case state.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::stream::{BoxStream, StreamExt};

use crate::domain::{Actor, ActorId, Case, CaseId, Event};
use crate::log::{subscribe, EventLog, Position, RecordedEvent, SledLog, SledOptions, StreamId};
use crate::org::{Registry, Role};
use crate::time::{Clock, Timestamp};
use crate::Error;

mod checkpoint;
mod command;
mod feed;
mod follow;
mod open_cases;
mod reads;
mod registry;
mod tick;

pub use command::{CommandOptions, CommandResult, CONCURRENT_SKEW_MS};
pub use feed::FeedOptions;
pub use reads::{PersonalRead, READS_STREAM_PREFIX, READ_BATCH_MS};
pub use tick::TickReport;

use follow::Follow;
use open_cases::OpenCases;

/// Prefix of every case stream.
pub const CASE_STREAM_PREFIX: &str = "case-";
pub(crate) const PAGE: usize = 4096;

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How often a command is re-decided after a concurrency conflict.
    pub max_retries: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_retries: 8 }
    }
}

/// The engine facade: what a portal embeds; cheap to share behind an `Arc`.
///
/// Every command takes the actor first, then the case, then the command and
/// its options. Actors are [`ActorId`]s: a staff id from the organisation
/// file, `resident:<pseudonymous id>`, or [`ActorId::System`] (the engine
/// itself, which records deadline escalations). Every public async method is
/// cancellation-safe: dropping its future leaves the store and the engine's
/// view consistent (see each method).
///
/// A quick start, on the embedded store (`engine/examples/embed.rs` goes on
/// to the feed, a timeline and a rate):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), gridcase_engine::Error> {
/// use std::sync::Arc;
/// use gridcase_engine::domain::{ActorId, CaseId, Channel, Command, Priority, RequestKind, Status, Submission};
/// use gridcase_engine::engine::CommandOptions;
/// use gridcase_engine::log::SledOptions;
/// use gridcase_engine::org::OrgFile;
/// use gridcase_engine::time::{ManualClock, Timestamp};
/// use gridcase_engine::{Engine, Error};
///
/// let dir = tempfile::tempdir().map_err(|e| Error::Storage(e.to_string()))?;
/// let clock = ManualClock::new(Timestamp::parse("2026-03-02T09:00:00+08:00")?);
/// let engine = Engine::open_sled(dir.path(), SledOptions::default(), Arc::new(clock.clone())).await?;
/// let org = OrgFile::parse(include_str!("../../examples/district.toml"))?;
/// engine.init_org(&ActorId::System, &org).await?;
///
/// // A resident reports a broken street light in grid 320902001001001.
/// let resident = ActorId::resident("li-7f3a")?;
/// let opened = engine
///     .submit(&resident, Submission {
///         channel: Channel::App,
///         kind: RequestKind::Report,
///         category: "street_light".into(),
///         priority: Priority::Normal,
///         description: "路灯不亮".into(),
///         location: "320902001001001".into(),
///         contact: None,
///         point: None,
///         media: Vec::new(),
///         reporter: None,
///     }, CommandOptions::default())
///     .await?;
/// let id: CaseId = opened.case.id.parse()?;
/// assert_eq!(opened.records[0].position, opened.outcome.unwrap().first_position);
///
/// // The community assigns its grid worker, who resolves it.
/// let community = ActorId::staff("cs11")?;
/// let worker = ActorId::staff("gw111")?;
/// engine.execute(&community, &id, Command::Assign { worker: "gw111".into() }, CommandOptions::default()).await?;
/// clock.advance(3_600_000);
/// let done = engine.execute(&worker, &id, Command::Resolve { note: "换了灯泡".into() }, CommandOptions::default()).await?;
/// assert_eq!(done.case.status, Status::Resolved);
///
/// // A refused command is a value to handle, and writes nothing.
/// let refused = engine.execute(&resident, &id, Command::Claim, CommandOptions::default()).await;
/// assert!(matches!(refused, Err(Error::Rejected(_))));
/// assert_eq!(engine.case(&id).await?.version, done.case.version);
/// # Ok(())
/// # }
/// ```
pub struct Engine {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    registry: RwLock<Arc<Registry>>,
    open: Mutex<OpenCases>,
    follow: tokio::sync::Mutex<Follow>,
    next_seq: AtomicU64,
    /// Set when registry events may have been committed without the
    /// registry being re-read (a cancelled `init_org` or catch-up); the next
    /// command or catch-up re-reads it first.
    registry_stale: AtomicBool,
    /// The latest `recorded_at` this engine knows the log holds (read from
    /// the head record at start, raised by every append and catch-up): a
    /// command whose time is before it is refused (see `command_time`).
    last_recorded: AtomicI64,
    /// When each (reader, case) last had a personal-data read recorded.
    read_marks: Mutex<reads::ReadMarks>,
}

fn case_stream(id: &str) -> Result<StreamId, Error> {
    StreamId::new(format!("{CASE_STREAM_PREFIX}{id}")).map_err(Error::from)
}

impl Engine {
    /// An engine over any log, reading the registry from it.
    pub async fn new(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Engine, Error> {
        let engine = Engine {
            log,
            clock,
            options,
            registry: RwLock::new(Arc::new(Registry::default())),
            open: Mutex::new(OpenCases::default()),
            follow: tokio::sync::Mutex::new(Follow {
                position: 0,
                checkpoint_checked: false,
                restored_from: None,
            }),
            next_seq: AtomicU64::new(0),
            registry_stale: AtomicBool::new(false),
            last_recorded: AtomicI64::new(i64::MIN),
            read_marks: Mutex::new(reads::ReadMarks::new()),
        };
        let head = engine.log.head().position;
        if head > 0 {
            if let Some(rec) = engine.log.read_all(head, 1).await?.first() {
                engine.note_recorded(rec.recorded_at);
            }
        }
        engine.refresh_registry().await?;
        let ids = engine.log.streams_with_prefix(CASE_STREAM_PREFIX).await?;
        let max = ids
            .iter()
            .filter_map(|s| {
                s.strip_prefix(CASE_STREAM_PREFIX)?.strip_prefix("GC")?.parse::<u64>().ok()
            })
            .max();
        engine.next_seq.store(max.unwrap_or(0), Ordering::SeqCst);
        Ok(engine)
    }

    /// Opens the embedded sled store in `dir`.
    pub async fn open_sled(
        dir: impl AsRef<std::path::Path>,
        options: SledOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, Error> {
        let log = SledLog::open(dir, options, clock.clone())?;
        Engine::new(Arc::new(log), clock, EngineOptions::default()).await
    }

    /// Raises the known last recorded time to `t`.
    fn note_recorded(&self, t: Timestamp) {
        self.last_recorded.fetch_max(t.0, Ordering::SeqCst);
    }

    /// The latest record time this engine knows of (its own appends, what
    /// it has caught up with, and the head record at start); `None` for an
    /// empty log.
    pub fn last_recorded_at(&self) -> Option<Timestamp> {
        let t = self.last_recorded.load(Ordering::SeqCst);
        (t != i64::MIN).then_some(Timestamp(t))
    }

    /// The log underneath.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Resolves who acts: a staff member must be in the registry and not
    /// retired (their role and unit come from it); a resident acts with the
    /// resident role; [`ActorId::System`] is the engine itself.
    pub fn actor(&self, id: &ActorId) -> Result<Actor, Error> {
        let staff_id = match id {
            ActorId::System => return Ok(Actor::system()),
            ActorId::Resident(r) => return Ok(Actor::resident(r)),
            ActorId::Staff(s) => s,
        };
        let reg = self.registry();
        let staff = reg
            .staff
            .get(staff_id)
            .ok_or_else(|| Error::NotFound(format!("staff {staff_id:?} is not in the registry")))?;
        if staff.retired {
            return Err(Error::InvalidInput(format!(
                "staff {staff_id:?} is retired and cannot act"
            )));
        }
        Ok(Actor {
            id: staff.id.clone(),
            role: staff.role,
            unit: Some(staff.unit.clone()),
            system: false,
        })
    }

    /// A case's current state: shared from memory when it is open and known
    /// (no copy), else folded from its stream.
    pub async fn case(&self, id: &CaseId) -> Result<Arc<Case>, Error> {
        self.load(id.as_str()).await
    }

    pub(super) async fn load(&self, id: &str) -> Result<Arc<Case>, Error> {
        if let Some(c) = self.open.lock().unwrap_or_else(|p| p.into_inner()).cases.get(id) {
            return Ok(c.clone());
        }
        self.load_from_log(id).await.map(Arc::new)
    }

    async fn load_from_log(&self, id: &str) -> Result<Case, Error> {
        let history = self.history_of(id).await?;
        Case::fold(history.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)))
            .ok_or_else(|| Error::NotFound(format!("case {id:?} does not exist")))
    }

    /// A case's events with their envelopes, in order ([`Error::NotFound`]
    /// when it has none). Feed it to `gridcase_projections::timeline` for
    /// a readable history.
    pub async fn history(&self, id: &CaseId) -> Result<Vec<(Event, RecordedEvent)>, Error> {
        self.history_of(id.as_str()).await
    }

    async fn history_of(&self, id: &str) -> Result<Vec<(Event, RecordedEvent)>, Error> {
        let stream = case_stream(id)?;
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in page {
                let ev = Event::from_recorded(&rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                out.push((ev, rec));
            }
        }
        if out.is_empty() {
            return Err(Error::NotFound(format!("case {id:?} does not exist")));
        }
        Ok(out)
    }

    /// Open cases known to the engine, in id order (complete after
    /// [`Engine::catch_up`]). Shared, not copied.
    pub fn open_cases(&self) -> Vec<Arc<Case>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Arc<Case>> = open.cases.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Ids of the open cases known to the engine, in order, for simulators
    /// and work queues.
    pub fn open_case_ids(&self) -> Vec<String> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = open.cases.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every event from `from` on, then live, with no gap and no duplicate.
    pub fn subscribe(&self, from: Position) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        subscribe(self.log.clone(), from).map(|r| r.map_err(Error::from)).boxed()
    }

    /// Staff of a role in a unit (first active one), for tools and simulators.
    pub fn staff_of(&self, role: Role, unit: &str) -> Option<String> {
        self.registry()
            .staff
            .values()
            .find(|s| s.role == role && s.unit == unit && !s.retired)
            .map(|s| s.id.clone())
    }
}
