//! The [`Engine`]: what a portal embeds. It loads a case, decides a command
//! against it, and appends the resulting events with optimistic concurrency,
//! retrying on a conflict; it keeps the registry and the open cases in
//! memory and fires deadline escalations on [`Engine::tick`].
//!
//! **Architecture Invariant:** the engine writes to the log only through
//! [`EventLog::append`] with an exact expected version, so two engines (or
//! two processes) on one store can never both act on the same case state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::domain::decide::Context;
use crate::domain::{decide, Actor, Case, Command, Event};
use crate::log::{
    subscribe, AppendOutcome, AppendRequest, EventLog, ExpectedVersion, Hash, Position,
    RecordedEvent, SledLog, SledOptions, StreamId, GENESIS_HASH,
};
use crate::org::{OrgFile, Registry, Role, ORG_STREAM};
use crate::time::{Clock, Timestamp};
use crate::Error;

/// Prefix of every case stream.
pub const CASE_STREAM_PREFIX: &str = "case-";
const PAGE: usize = 4096;
/// Deadline checks in flight at once during a tick.
const TICK_CONCURRENCY: usize = 256;

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

/// Per-call options of a command.
#[derive(Clone, Debug, Default)]
pub struct CommandOptions {
    /// A retried call with the same key returns the first result and appends nothing.
    pub idempotency_key: Option<String>,
    /// Act only if the case is at this version (HTTP `If-Match`); otherwise `Error::Conflict`.
    pub expected_version: Option<u64>,
    /// Correlation id stored on the events.
    pub correlation_id: Option<String>,
}

/// The result of a command.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommandResult {
    /// The case after the command.
    pub case: Case,
    /// The events this command appended (empty for a deduplicated retry or a no-op).
    pub events: Vec<Event>,
    /// Where they were appended.
    pub outcome: Option<AppendOutcome>,
    /// True when this was a retry of an earlier call with the same idempotency key.
    pub deduplicated: bool,
}

/// What a deadline pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    /// Cases whose deadlines were checked.
    pub checked: u64,
    /// Events recorded.
    pub events: u64,
    /// Automatic escalations to a street.
    pub escalations: u64,
    /// Automatic dispatches to a department.
    pub dispatches: u64,
    /// Overdue marks.
    pub overdue_marks: u64,
}

/// Open cases by id, and their next deadlines in time order.
#[derive(Default)]
struct OpenCases {
    cases: HashMap<String, Case>,
    deadlines: BTreeSet<(Timestamp, String)>,
    /// Newest version put for each case, open or not: a command whose
    /// acknowledgement arrives after a later command's must not put its
    /// older state back (nor resurrect a case the later one closed).
    latest: HashMap<String, u64>,
    /// Position ranges (first → last) this engine appended and has already
    /// folded into `cases`: catch-up skips them instead of reading back its
    /// own writes, which otherwise costs a decode per event on every tick.
    own: BTreeMap<Position, Position>,
}

/// What an engine checkpoint holds: the open cases as folded up to `position`
/// (some may be newer: catch-up skips what a case already holds).
#[derive(Serialize, Deserialize)]
struct CheckpointBody {
    position: Position,
    hash: Hash,
    cases: Vec<Case>,
}

/// The store's name for the engine's checkpoint.
const CHECKPOINT_NAME: &str = "engine/open-cases";
const CHECKPOINT_MAGIC: &[u8] = b"gridcase-engine-checkpoint\0";
/// Bump when `Case` or its fold changes: an old checkpoint is then ignored
/// and the log is followed from the start.
const CHECKPOINT_FORMAT: u32 = 1;

/// Past this many remembered ranges the oldest are forgotten; forgetting is
/// safe, it only makes catch-up read those positions.
const MAX_OWN_RANGES: usize = 1 << 20;

impl OpenCases {
    /// Notes that `outcome`'s positions are already reflected here.
    fn note_own(&mut self, outcome: &AppendOutcome) {
        if self.own.len() >= MAX_OWN_RANGES {
            self.own.pop_first();
        }
        self.own.insert(outcome.first_position, outcome.last_position);
    }

    /// Moves `position` past every own range that starts right after it,
    /// drops ranges already passed, and returns where the next own range
    /// starts (reads should stop before it).
    fn skip_own(&mut self, position: &mut Position) -> Option<Position> {
        loop {
            let (&first, &last) = self.own.first_key_value()?;
            if last <= *position {
                self.own.pop_first();
            } else if first == *position + 1 {
                *position = last;
                self.own.pop_first();
            } else if first <= *position {
                // Partly passed (cannot happen with whole appends); read it.
                self.own.pop_first();
            } else {
                return Some(first);
            }
        }
    }

    fn put(&mut self, case: Case) {
        let newest = self.latest.entry(case.id.clone()).or_insert(0);
        if case.version < *newest {
            return;
        }
        *newest = case.version;
        self.remove_entry(&case.id);
        if case.is_open() {
            if let Some(d) = case.next_deadline() {
                self.deadlines.insert((d, case.id.clone()));
            }
            self.cases.insert(case.id.clone(), case);
        }
    }

    /// Forgets a case so that the next load reads it from the log.
    fn remove(&mut self, id: &str) {
        self.latest.remove(id);
        self.remove_entry(id);
    }

    fn remove_entry(&mut self, id: &str) {
        if let Some(old) = self.cases.remove(id) {
            if let Some(d) = old.next_deadline() {
                self.deadlines.remove(&(d, old.id));
            }
        }
    }
}

/// How far the engine has followed the log (for the complete view of open
/// cases that deadlines need).
struct Follow {
    position: Position,
    /// Whether the store's checkpoint has been looked at: lazily, on the
    /// first catch-up, so commands that never need the whole open-case view
    /// (showing a case) do not decode it.
    checkpoint_checked: bool,
    /// The position of the checkpoint the view started from, if one was used.
    restored_from: Option<Position>,
}

/// The engine facade; cheap to share behind an `Arc`.
pub struct Engine {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    registry: RwLock<Arc<Registry>>,
    open: Mutex<OpenCases>,
    follow: tokio::sync::Mutex<Follow>,
    next_seq: AtomicU64,
}

fn case_stream(id: &str) -> Result<StreamId, Error> {
    StreamId::new(format!("{CASE_STREAM_PREFIX}{id}")).map_err(Error::from)
}

fn command_digest(case_id: Option<&str>, command: &Command, actor: &str) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"gridcase-command-v1\0");
    h.update(case_id.unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(actor.as_bytes());
    h.update(b"\0");
    h.update(&postcard::to_allocvec(command).unwrap_or_default());
    *h.finalize().as_bytes()
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
        };
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

    /// Saves the open-case view, complete up to the position returned, as a
    /// checkpoint in the store, so that the next start reads only the log
    /// after it. Run it at shutdown and now and then (`serve` does both).
    pub async fn save_checkpoint(&self) -> Result<Position, Error> {
        let mut follow = self.follow.lock().await;
        self.catch_up_locked(&mut follow).await?;
        let position = follow.position;
        let hash = match position {
            0 => GENESIS_HASH,
            p => {
                self.log
                    .read_all(p, 1)
                    .await?
                    .first()
                    .ok_or_else(|| Error::Internal("the followed position is past the log".into()))?
                    .hash
            }
        };
        let mut cases: Vec<Case> = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.cases.values().cloned().collect()
        };
        drop(follow);
        cases.sort_by(|a, b| a.id.cmp(&b.id));
        let body = postcard::to_allocvec(&CheckpointBody { position, hash, cases })
            .map_err(|e| Error::Codec(format!("engine checkpoint: {e}")))?;
        let mut bytes = Vec::with_capacity(body.len() + 40);
        bytes.extend_from_slice(CHECKPOINT_MAGIC);
        bytes.extend_from_slice(&CHECKPOINT_FORMAT.to_be_bytes());
        bytes.extend_from_slice(blake3::hash(&body).as_bytes());
        bytes.extend_from_slice(&body);
        self.log.save_checkpoint(CHECKPOINT_NAME, bytes).await?;
        Ok(position)
    }

    /// Takes the open-case view from the store's checkpoint if it is intact,
    /// of this build's format, and its position and hash are the log's.
    /// Returns why not otherwise; the caller then follows the whole log.
    async fn restore_checkpoint(&self, follow: &mut Follow) -> Result<Position, String> {
        let bytes = match self.log.load_checkpoint(CHECKPOINT_NAME).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err("none saved".into()),
            Err(e) => return Err(e.to_string()),
        };
        let header = CHECKPOINT_MAGIC.len() + 4 + 32;
        if bytes.len() < header || &bytes[..CHECKPOINT_MAGIC.len()] != CHECKPOINT_MAGIC {
            return Err("not an engine checkpoint".into());
        }
        let format = &bytes[CHECKPOINT_MAGIC.len()..CHECKPOINT_MAGIC.len() + 4];
        if format != CHECKPOINT_FORMAT.to_be_bytes() {
            return Err("written by a build with another case fold".into());
        }
        let (digest, body) = bytes[CHECKPOINT_MAGIC.len() + 4..].split_at(32);
        if blake3::hash(body).as_bytes() != digest {
            return Err("its digest does not match (torn or altered)".into());
        }
        let cp: CheckpointBody =
            postcard::from_bytes(body).map_err(|e| format!("does not decode: {e}"))?;
        if cp.position > self.log.head().position {
            return Err(format!("it is at position {}, past the log's head", cp.position));
        }
        if cp.position > 0 {
            let rec = self.log.read_all(cp.position, 1).await.map_err(|e| e.to_string())?;
            if rec.first().map(|r| r.hash) != Some(cp.hash) {
                return Err(format!(
                    "the log's record {} is not the one it was taken at",
                    cp.position
                ));
            }
        }
        if cp.position <= follow.position {
            return Err("the engine has already followed the log past it".into());
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // Cases this engine changed before the restore are newer than the
        // checkpoint's copies, and `put` keeps the newer.
        for case in cp.cases {
            open.put(case);
        }
        follow.position = cp.position;
        Ok(cp.position)
    }

    /// The position of the checkpoint the open-case view was restored from,
    /// if one was used (known after the first [`Engine::catch_up`]).
    pub async fn restored_from_checkpoint(&self) -> Option<Position> {
        self.follow.lock().await.restored_from
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

    /// The log underneath.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether an organisation has been loaded.
    pub fn has_org(&self) -> bool {
        self.registry().version > 0
    }

    /// Loads an organisation into an empty store, as one atomic batch.
    pub async fn init_org(&self, org: &OrgFile, actor: &str) -> Result<AppendOutcome, Error> {
        let events = org.events()?;
        let mut req = AppendRequest::new(
            StreamId::new(ORG_STREAM)?,
            ExpectedVersion::NoStream,
            actor,
            events.iter().map(Event::to_data).collect(),
        );
        req.correlation_id = Some("init".into());
        let out = self.log.append(req).await.map(|a| a.outcome).map_err(|e| match e.into() {
            Error::Conflict { .. } => Error::InvalidInput(
                "this store already has an organisation; use a new data directory".into(),
            ),
            other => other,
        })?;
        self.refresh_registry().await?;
        Ok(out)
    }

    /// Re-reads registry events appended since the registry was last loaded.
    pub async fn refresh_registry(&self) -> Result<(), Error> {
        let stream = StreamId::new(ORG_STREAM)?;
        let have = self.registry().version;
        if self.log.stream_version(&stream).await? <= have {
            return Ok(());
        }
        let mut reg = (*self.registry()).clone();
        let mut from = have + 1;
        loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in &page {
                let ev = Event::from_recorded(rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                reg.apply(&ev);
                reg.version = rec.version;
            }
        }
        reg.reindex();
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
        Ok(())
    }

    /// The registry as it stood at a past position (for audits).
    pub async fn registry_as_of(&self, position: Position) -> Result<Registry, Error> {
        let stream = StreamId::new(ORG_STREAM)?;
        let mut reg = Registry::default();
        let mut from = 1;
        'outer: loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in &page {
                if rec.position > position {
                    break 'outer;
                }
                let ev = Event::from_recorded(rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                reg.apply(&ev);
                reg.version = rec.version;
            }
        }
        reg.reindex();
        Ok(reg)
    }

    /// Resolves an actor id: a staff id from the registry, or `resident:<id>`.
    pub fn actor(&self, id: &str) -> Result<Actor, Error> {
        if let Some(r) = id.strip_prefix("resident:") {
            if r.is_empty() || r.len() > 64 || r.chars().any(char::is_control) {
                return Err(Error::InvalidInput(
                    "a resident id is 1 to 64 printable characters after 'resident:'".into(),
                ));
            }
            return Ok(Actor::resident(r));
        }
        let reg = self.registry();
        let staff = reg
            .staff
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("staff {id:?} is not in the registry")))?;
        if staff.retired {
            return Err(Error::InvalidInput(format!("staff {id:?} is retired and cannot act")));
        }
        Ok(Actor {
            id: staff.id.clone(),
            role: staff.role,
            unit: Some(staff.unit.clone()),
            system: false,
        })
    }

    /// Loads a case: from memory when it is open and known, else from its stream.
    pub async fn case(&self, id: &str) -> Result<Case, Error> {
        if let Some(c) = self.open.lock().unwrap_or_else(|p| p.into_inner()).cases.get(id) {
            return Ok(c.clone());
        }
        self.load_from_log(id).await
    }

    async fn load_from_log(&self, id: &str) -> Result<Case, Error> {
        let history = self.history(id).await?;
        let decoded: Vec<(Event, RecordedEvent)> = history;
        let case = Case::fold(decoded.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)))
            .ok_or_else(|| Error::NotFound(format!("case {id:?} does not exist")))?;
        Ok(case)
    }

    /// A case's events with their envelopes, in order.
    pub async fn history(&self, id: &str) -> Result<Vec<(Event, RecordedEvent)>, Error> {
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

    /// Opens a case. Returns the new case.
    pub async fn submit(
        &self,
        actor: &str,
        submission: crate::domain::Submission,
        opts: CommandOptions,
    ) -> Result<CommandResult, Error> {
        self.execute_at(None, Command::Submit(submission), actor, opts, None).await
    }

    /// Runs a command on an existing case as `actor`, at the clock's time.
    pub async fn execute(
        &self,
        case_id: &str,
        command: Command,
        actor: &str,
        opts: CommandOptions,
    ) -> Result<CommandResult, Error> {
        if matches!(command, Command::Submit(_)) {
            return Err(Error::InvalidInput("use submit to open a case".into()));
        }
        self.execute_at(Some(case_id), command, actor, opts, None).await
    }

    async fn execute_at(
        &self,
        case_id: Option<&str>,
        command: Command,
        actor_id: &str,
        opts: CommandOptions,
        at: Option<Timestamp>,
    ) -> Result<CommandResult, Error> {
        let actor = if actor_id == "system" { Actor::system() } else { self.actor(actor_id)? };
        let digest = command_digest(case_id, &command, &actor.id);
        if let Some(key) = &opts.idempotency_key {
            if key.is_empty() || key.len() > 200 {
                return Err(Error::InvalidInput("an idempotency key is 1 to 200 bytes".into()));
            }
            if let Some((d, outcome)) = self.log.idempotency_lookup(key).await? {
                if d != digest {
                    return Err(Error::IdempotencyMismatch { key: key.clone() });
                }
                return self.replay_result(outcome).await;
            }
        }
        let registry = self.registry();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = at.unwrap_or_else(|| self.clock.now());
            let (id, case, expected) = match case_id {
                Some(id) => {
                    let case = self.case(id).await?;
                    let v = case.version;
                    (id.to_string(), Some(case), ExpectedVersion::Exact(v))
                }
                None => {
                    let seq = self.next_seq.fetch_add(1, Ordering::SeqCst) + 1;
                    (format!("GC{seq:07}"), None, ExpectedVersion::NoStream)
                }
            };
            if let (Some(want), Some(c)) = (opts.expected_version, &case) {
                if c.version != want {
                    return Err(Error::Conflict {
                        stream: format!("{CASE_STREAM_PREFIX}{id}"),
                        expected: ExpectedVersion::Exact(want),
                        actual: c.version,
                    });
                }
            }
            let merge_target_open = match &command {
                Command::Merge { into } => Some(match self.case(into).await {
                    Ok(t) => t.is_open() && t.id != id,
                    Err(Error::NotFound(_)) | Err(Error::InvalidInput(_)) => false,
                    Err(e) => return Err(e),
                }),
                _ => None,
            };
            let ctx = Context { registry: &registry, now, case_id: &id, merge_target_open };
            let events = match decide(case.as_ref(), &command, &actor, &ctx) {
                Ok(events) => events,
                Err(rejection) => {
                    // The first call with this key may have committed since the
                    // lookup above: a retry must get its result, not a refusal
                    // of the command decided again on the newer state.
                    if let Some(key) = &opts.idempotency_key {
                        if let Some((d, outcome)) = self.log.idempotency_lookup(key).await? {
                            if d != digest {
                                return Err(Error::IdempotencyMismatch { key: key.clone() });
                            }
                            return self.replay_result(outcome).await;
                        }
                    }
                    return Err(Error::Rejected(rejection));
                }
            };
            if events.is_empty() {
                let case =
                    case.ok_or_else(|| Error::Internal("a submission decided no event".into()))?;
                return Ok(CommandResult { case, events, outcome: None, deduplicated: false });
            }
            let mut req = AppendRequest::new(
                case_stream(&id)?,
                expected,
                actor.id.clone(),
                events.iter().map(Event::to_data).collect(),
            );
            req.idempotency_key = opts.idempotency_key.clone();
            req.content_digest = Some(digest);
            req.correlation_id = opts.correlation_id.clone();
            match self.log.append(req).await.map(|a| a.outcome).map_err(Error::from) {
                Ok(outcome) if outcome.deduplicated => return self.replay_result(outcome).await,
                Ok(outcome) => {
                    let mut case = match case {
                        Some(c) => c,
                        None => Case::start(&events[0], &actor.id, outcome.recorded_at)
                            .ok_or_else(|| {
                                Error::Internal("submission produced no CaseSubmitted".into())
                            })?,
                    };
                    let skip = usize::from(case.version == 1 && case_id.is_none());
                    for e in &events[skip..] {
                        case.apply(e, outcome.recorded_at);
                    }
                    {
                        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                        open.put(case.clone());
                        open.note_own(&outcome);
                    }
                    if case_id.is_none() {
                        // Another process may have used ids past ours.
                        let _ = self.next_seq.fetch_max(
                            id.trim_start_matches("GC").parse::<u64>().unwrap_or(0),
                            Ordering::SeqCst,
                        );
                    }
                    return Ok(CommandResult {
                        case,
                        events,
                        outcome: Some(outcome),
                        deduplicated: false,
                    });
                }
                Err(Error::Conflict { .. })
                    if attempt <= self.options.max_retries && opts.expected_version.is_none() =>
                {
                    if let Some(id) = case_id {
                        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The result of an earlier call, for a retried idempotency key.
    async fn replay_result(&self, outcome: AppendOutcome) -> Result<CommandResult, Error> {
        let recs = self.log.read_all(outcome.first_position, 1).await?;
        let rec = recs
            .first()
            .ok_or_else(|| Error::Internal("idempotent outcome points past the log".into()))?;
        let id = rec.stream.strip_prefix(CASE_STREAM_PREFIX).unwrap_or(&rec.stream).to_string();
        let case = self.case(&id).await?;
        Ok(CommandResult {
            case,
            events: Vec::new(),
            outcome: Some(AppendOutcome { deduplicated: true, ..outcome }),
            deduplicated: true,
        })
    }

    /// Follows the log up to its head so that the open-case view is complete
    /// (changes by other processes included). Returns the position reached.
    pub async fn catch_up(&self) -> Result<Position, Error> {
        let mut follow = self.follow.lock().await;
        self.catch_up_locked(&mut follow).await
    }

    async fn catch_up_locked(&self, follow: &mut Follow) -> Result<Position, Error> {
        if !follow.checkpoint_checked {
            follow.checkpoint_checked = true;
            match self.restore_checkpoint(follow).await {
                Ok(p) => follow.restored_from = Some(p),
                // Derived state: without it the engine reads the log instead.
                Err(reason) => tracing::info!(
                    %reason,
                    "engine checkpoint not used; following the log from the start"
                ),
            }
        }
        let head = self.log.head().position;
        let mut saw_org = false;
        while follow.position < head {
            let next_own =
                self.open.lock().unwrap_or_else(|p| p.into_inner()).skip_own(&mut follow.position);
            if follow.position >= head {
                break;
            }
            let limit = match next_own {
                Some(first) => ((first - follow.position - 1) as usize).min(PAGE),
                None => PAGE,
            };
            let page = self.log.read_all(follow.position + 1, limit).await?;
            let Some(last) = page.last() else { break };
            let last_pos = last.position;
            for rec in &page {
                let Some(id) = rec.stream.strip_prefix(CASE_STREAM_PREFIX) else {
                    saw_org |= rec.stream == ORG_STREAM;
                    continue;
                };
                let known = self
                    .open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .cases
                    .get(id)
                    .map(|c| c.version);
                match known {
                    Some(v) if rec.version <= v => {}
                    Some(v) if rec.version == v + 1 => {
                        let ev = Event::from_recorded(rec).map_err(|e| Error::Corruption {
                            position: rec.position,
                            reason: e.0,
                        })?;
                        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(mut c) = open.cases.get(id).cloned() {
                            c.apply(&ev, rec.recorded_at);
                            open.put(c);
                        }
                    }
                    _ if rec.version == 1 => {
                        let ev = Event::from_recorded(rec).map_err(|e| Error::Corruption {
                            position: rec.position,
                            reason: e.0,
                        })?;
                        if let Some(c) = Case::start(&ev, &rec.actor, rec.recorded_at) {
                            self.open.lock().unwrap_or_else(|p| p.into_inner()).put(c);
                        }
                    }
                    _ => {
                        // A case not in memory (closed and evicted, or changed
                        // elsewhere): take its whole current state from its stream.
                        let c = self.load_from_log(id).await?;
                        self.open.lock().unwrap_or_else(|p| p.into_inner()).put(c);
                    }
                }
            }
            follow.position = last_pos;
        }
        if saw_org {
            self.refresh_registry().await?;
        }
        Ok(follow.position)
    }

    /// Records every deadline passed at `now` (automatic escalation,
    /// dispatch to the category's department, overdue marks). Deadlines are
    /// derived from the log, so after a restart nothing is missed, and the
    /// appends are version-checked, so nothing fires twice.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, Error> {
        self.catch_up().await?;
        let due: Vec<String> = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.deadlines
                .range(..=(now, String::from("\u{10FFFF}")))
                .map(|(_, id)| id.clone())
                .collect()
        };
        // Due cases are independent streams, so their checks run concurrently:
        // each waits for a group commit, and serially they would wait for one
        // flush each.
        let mut report = TickReport::default();
        let mut checks = futures::stream::iter(due.into_iter().map(|id| async move {
            self.execute_at(
                Some(&id),
                Command::CheckDeadlines,
                "system",
                CommandOptions::default(),
                Some(now),
            )
            .await
        }))
        .buffer_unordered(TICK_CONCURRENCY);
        while let Some(r) = checks.next().await {
            let r = r?;
            report.checked += 1;
            for e in &r.events {
                report.events += 1;
                match e {
                    Event::CaseEscalated { .. } => report.escalations += 1,
                    Event::CaseDispatched { .. } => report.dispatches += 1,
                    Event::CaseOverdue { .. } => report.overdue_marks += 1,
                    _ => {}
                }
            }
        }
        Ok(report)
    }

    /// Open cases known to the engine (complete after [`Engine::catch_up`]).
    pub fn open_cases(&self) -> Vec<Case> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Case> = open.cases.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Ids of open cases that `actor` may act on next, for simulators and work queues.
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
