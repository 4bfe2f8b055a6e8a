//! The command pipeline: resolve the actor, load the case, decide, append
//! with an exact expected version, retry on a conflict, update the open-case
//! view, and answer a retried idempotency key with the first call's result.
//!
//! Cancellation: a caller may drop a command's future at any await (an HTTP
//! client that disconnects, a timeout). The append is handed to the log's
//! writer, which commits it or not on its own; what the engine must not do
//! is keep an open-case view that misses a committed event. So from the
//! moment an append is sent until its result is folded in, a guard holds
//! the case's id, and if the future is dropped in between, the guard forgets
//! the case: the next load reads it from the log, which has the truth.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::{case_stream, Engine, CASE_STREAM_PREFIX};
use crate::domain::decide::Context;
use crate::domain::{decide, ActorId, Case, CaseId, Command, Event, Submission};
use crate::log::{AppendOutcome, AppendRequest, ExpectedVersion, Hash, RecordedEvent};
use crate::time::Timestamp;
use crate::Error;

/// How far behind the log's last record a command's time may be and still
/// count as concurrent with it rather than as a time in the past (see
/// `Engine::command_time`).
pub const CONCURRENT_SKEW_MS: i64 = 5_000;

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

/// What a command wrote, so that no caller reads it back or folds again.
///
/// On an idempotent replay (a retried key), everything describes the
/// *first* call: its events and records, and the case as that call left it
/// (folded to its last version), not as it is now.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct CommandResult {
    /// The case right after the command.
    pub case: Arc<Case>,
    /// The events the command appended, decoded; empty for a no-op.
    pub events: Vec<Event>,
    /// The same events as stored: positions, versions, recorded time, actor,
    /// hashes. One per entry of `events`, in order.
    pub records: Vec<RecordedEvent>,
    /// Where they were appended (`None` for a no-op).
    pub outcome: Option<AppendOutcome>,
    /// True when this was a retry of an earlier call with the same idempotency key.
    pub deduplicated: bool,
}

/// What "the same request" means for an idempotency key: the case, the
/// actor and the command (not the events, which a retry would decide anew).
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

/// Forgets a case in the open-case view if dropped while armed (see the
/// module docs on cancellation).
struct Pending<'a> {
    engine: &'a Engine,
    case_id: Option<String>,
}

impl Pending<'_> {
    fn disarm(mut self) {
        self.case_id = None;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.case_id.take() {
            self.engine.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
    }
}

impl Engine {
    /// Opens a case as `actor`, at the clock's time. The engine allocates the
    /// id (`GC` and seven digits); the result's `case.id` is it.
    ///
    /// Cancellation-safe: dropping the future before it completes either
    /// appends nothing or appends the submission, and in both cases the
    /// engine's view stays that of the log.
    pub async fn submit(
        &self,
        actor: &ActorId,
        submission: Submission,
        opts: CommandOptions,
    ) -> Result<CommandResult, Error> {
        self.execute_at(actor, None, Command::Submit(submission), opts, None).await
    }

    /// Runs `command` on case `case` as `actor`, at the clock's time.
    ///
    /// A time before the log's last record (beyond [`CONCURRENT_SKEW_MS`])
    /// or outside [`crate::time::EARLIEST`]..[`crate::time::LATEST`] is
    /// [`Error::InvalidInput`] and writes nothing.
    ///
    /// A refused command is [`Error::Rejected`] and writes nothing; a race
    /// with another writer is retried on the newer state (up to
    /// [`super::EngineOptions::max_retries`]) unless `opts.expected_version`
    /// pins the version, which makes it [`Error::Conflict`].
    ///
    /// Cancellation-safe, like [`Engine::submit`].
    pub async fn execute(
        &self,
        actor: &ActorId,
        case: &CaseId,
        command: Command,
        opts: CommandOptions,
    ) -> Result<CommandResult, Error> {
        if matches!(command, Command::Submit(_)) {
            return Err(Error::InvalidInput("use submit to open a case".into()));
        }
        self.execute_at(actor, Some(case.as_str()), command, opts, None).await
    }

    pub(super) async fn execute_at(
        &self,
        actor_id: &ActorId,
        case_id: Option<&str>,
        command: Command,
        opts: CommandOptions,
        at: Option<Timestamp>,
    ) -> Result<CommandResult, Error> {
        // [write 1] Resolve the actor; a keyed retry returns the first call's result.
        let actor = self.actor(actor_id)?;
        let digest = command_digest(case_id, &command, &actor.id);
        if let Some(key) = &opts.idempotency_key {
            if key.is_empty() || key.len() > 200 {
                return Err(Error::InvalidInput("an idempotency key is 1 to 200 bytes".into()));
            }
            if let Some((d, outcome)) = self.log.idempotency_lookup(key).await? {
                if d != digest {
                    return Err(Error::IdempotencyMismatch { key: key.clone() });
                }
                return self.replay_result(outcome, Vec::new()).await;
            }
        }
        self.refresh_registry_if_stale().await?;
        let registry = self.registry();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = self.command_time(at)?;
            let (id, case, expected) = match case_id {
                Some(id) => {
                    let case = self.load(id).await?;
                    let v = case.version;
                    (id.to_string(), Some(case), ExpectedVersion::Exact(v))
                }
                None => {
                    let seq = self.next_seq.fetch_add(1, Ordering::SeqCst) + 1;
                    (CaseId::from_seq(seq).to_string(), None, ExpectedVersion::NoStream)
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
                Command::Merge { into } => Some(match self.load(into).await {
                    Ok(t) => t.is_open() && t.id != id,
                    Err(Error::NotFound(_)) | Err(Error::InvalidInput(_)) => false,
                    Err(e) => return Err(e),
                }),
                _ => None,
            };
            let ctx = Context { registry: &registry, now, case_id: &id, merge_target_open };
            // [write 2] Decide on the loaded case (pure: no clock, no store).
            let events = match decide(case.as_deref(), &command, &actor, &ctx) {
                Ok(events) => events,
                Err(rejection) => {
                    if case_id.is_none() {
                        // Give the id back unless another submission took a
                        // later one meanwhile: a refusal must not use up ids.
                        let seq = CaseId::new(id.clone()).ok().and_then(|c| c.seq()).unwrap_or(0);
                        let _ = self.next_seq.compare_exchange(
                            seq,
                            seq.saturating_sub(1),
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    }
                    // The first call with this key may have committed since the
                    // lookup above: a retry must get its result, not a refusal
                    // of the command decided again on the newer state.
                    if let Some(key) = &opts.idempotency_key {
                        if let Some((d, outcome)) = self.log.idempotency_lookup(key).await? {
                            if d != digest {
                                return Err(Error::IdempotencyMismatch { key: key.clone() });
                            }
                            return self.replay_result(outcome, Vec::new()).await;
                        }
                    }
                    return Err(Error::Rejected(rejection));
                }
            };
            if events.is_empty() {
                let case =
                    case.ok_or_else(|| Error::Internal("a submission decided no event".into()))?;
                return Ok(CommandResult {
                    case,
                    events,
                    records: Vec::new(),
                    outcome: None,
                    deduplicated: false,
                });
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
            // [write 3] From here the log may commit whatever happens to
            // this future; the guard keeps the open-case view honest if it is dropped.
            let pending = Pending { engine: self, case_id: Some(id.clone()) };
            match self.append_recorded(req).await {
                Ok((outcome, records)) if outcome.deduplicated => {
                    pending.disarm();
                    return self.replay_result(outcome, records).await;
                }
                Ok((outcome, records)) => {
                    let mut next = match case {
                        Some(c) => Arc::unwrap_or_clone(c),
                        None => Case::start(&events[0], &actor.id, outcome.recorded_at)
                            .ok_or_else(|| {
                                Error::Internal("submission produced no CaseSubmitted".into())
                            })?,
                    };
                    let skip = usize::from(case_id.is_none());
                    for e in &events[skip..] {
                        next.apply(e, outcome.recorded_at);
                    }
                    // [write 9] Fold our own events into the view and note the
                    // positions as ours, so catch-up does not read them back.
                    let next = Arc::new(next);
                    {
                        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                        open.put(next.clone());
                        open.note_own(&outcome);
                    }
                    pending.disarm();
                    if case_id.is_none() {
                        // Another process may have used ids past ours.
                        let seq = next.id.strip_prefix("GC").and_then(|s| s.parse().ok());
                        let _ = self.next_seq.fetch_max(seq.unwrap_or(0), Ordering::SeqCst);
                    }
                    return Ok(CommandResult {
                        case: next,
                        events,
                        records,
                        outcome: Some(outcome),
                        deduplicated: false,
                    });
                }
                Err(Error::Conflict { .. })
                    if attempt <= self.options.max_retries && opts.expected_version.is_none() =>
                {
                    // Dropping the guard forgets the case, so the retry loads it anew.
                    drop(pending);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends and returns the outcome with the records as stored (the
    /// log hands them back; nothing is read again).
    async fn append_recorded(
        &self,
        req: AppendRequest,
    ) -> Result<(AppendOutcome, Vec<RecordedEvent>), Error> {
        let appended = self.log.append(req).await?;
        self.note_recorded(appended.outcome.recorded_at);
        Ok((appended.outcome, appended.records))
    }

    /// The time a command is decided at: `at` (a tick's horizon) or the
    /// clock's now.
    ///
    /// The log never records a time before its last record (it stamps
    /// `max(clock, last)`), while deadlines are computed from this time; a
    /// command dated before the last record (`--at` in the past, a clock
    /// set back) would store a case whose recorded time and deadlines
    /// disagree, so it is refused. Up to [`CONCURRENT_SKEW_MS`] behind is
    /// not "in the past" but a race with a concurrent writer (a request
    /// read the clock, another was recorded a moment later); that time is
    /// moved up to the last record, so the record and its deadlines still
    /// agree. A time outside [`crate::time::EARLIEST`]..[`crate::time::LATEST`]
    /// is refused whatever the log holds.
    pub(super) fn command_time(&self, at: Option<Timestamp>) -> Result<Timestamp, Error> {
        // The bound first, then the clock: the log stamped the bound from
        // the same clock earlier, so with a clock that does not go back
        // `now >= last` here and nothing concurrent is refused.
        let last = self.last_recorded_at();
        let now = at.unwrap_or_else(|| self.clock.now()).in_range("the command's time")?;
        match last {
            Some(last) if now.0 < last.0.saturating_sub(CONCURRENT_SKEW_MS) => {
                Err(Error::InvalidInput(format!(
                    "the command's time {now} is before the log's last record ({last}); \
                     the log cannot record the past: give a time at or after {last}"
                )))
            }
            Some(last) => Ok(now.max(last)),
            None => Ok(now),
        }
    }

    /// The result of an earlier call, for a retried idempotency key: its
    /// events, its records and the case as it left it.
    async fn replay_result(
        &self,
        outcome: AppendOutcome,
        mut records: Vec<RecordedEvent>,
    ) -> Result<CommandResult, Error> {
        if records.is_empty() {
            let n = (outcome.last_position + 1).saturating_sub(outcome.first_position) as usize;
            records = self.log.read_all(outcome.first_position, n.max(1)).await?;
            records.retain(|r| r.position <= outcome.last_position);
        }
        let first = records
            .first()
            .ok_or_else(|| Error::Internal("idempotent outcome points past the log".into()))?;
        let id = first.stream.strip_prefix(CASE_STREAM_PREFIX).unwrap_or(&first.stream).to_string();
        let events = records
            .iter()
            .map(|r| {
                Event::from_recorded(r)
                    .map_err(|e| Error::Corruption { position: r.position, reason: e.0 })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let history = self.history(&CaseId::new(id)?).await?;
        let case = Case::fold(
            history
                .iter()
                .filter(|(_, r)| r.version <= outcome.last_version)
                .map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)),
        )
        .ok_or_else(|| Error::Internal("the replayed case does not fold".into()))?;
        Ok(CommandResult {
            case: Arc::new(case),
            events,
            records,
            outcome: Some(AppendOutcome { deduplicated: true, ..outcome }),
            deduplicated: true,
        })
    }
}
