//! The command pipeline: resolve the actor, load the case, decide, append
//! with an exact expected version, retry on a conflict, update the open-case
//! view, and answer a retried idempotency key with the first call's result.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{case_stream, Engine, CASE_STREAM_PREFIX};
use crate::domain::decide::Context;
use crate::domain::{decide, Actor, Case, Command, Event};
use crate::log::{AppendOutcome, AppendRequest, ExpectedVersion, Hash};
use crate::time::Timestamp;
use crate::Error;

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

    pub(super) async fn execute_at(
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
            match self.log.append(req).await {
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
}
