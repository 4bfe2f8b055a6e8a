//! The command pipeline both HTTP surfaces share: request headers to
//! [`CommandOptions`] (`Idempotency-Key` scoped to the caller, `If-Match`,
//! correlation id), the engine call, and the response built from what the
//! engine returns (its records and the case after the command; on an
//! idempotent replay, the first call's): nothing is read back or folded
//! again, and a write waits until the projections show it
//! (read-your-writes) before it is answered.

use std::time::Instant;

use axum::http::HeaderMap;
use gridcase_engine::domain::{Case, Command};
use gridcase_engine::engine::CommandOptions;
use gridcase_engine::log::ExpectedVersion;
use gridcase_engine::Error as EngineError;

use crate::auth::Principal;
use crate::dto::{CaseView, CommandResponse, EventView};
use crate::extract::{case_id, if_match, token};
use crate::scope::Scope;
use crate::state::AppState;
use crate::ApiError;

/// Longest `Idempotency-Key` a client may send (the engine stores it
/// prefixed with the actor, within its 200-byte limit).
const MAX_IDEMPOTENCY_KEY: usize = 100;

/// The engine-side idempotency key: the client's key scoped to its actor,
/// so that two clients can never collide on (or probe) each other's keys.
pub(crate) fn scoped_key(actor: &str, key: &str) -> String {
    format!("{}:{actor}:{key}", actor.len())
}

/// Builds the command options from the request headers.
pub(crate) fn command_options(
    p: &Principal,
    headers: &HeaderMap,
) -> Result<CommandOptions, ApiError> {
    let key = token(headers, "idempotency-key", MAX_IDEMPOTENCY_KEY)?;
    let correlation = match token(headers, "x-correlation-id", 128)? {
        Some(c) => Some(c),
        // The request id (ours, or the client's when it is sane) ties the
        // stored events to this request's log lines.
        None => headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string),
    };
    Ok(CommandOptions {
        idempotency_key: key.map(|k| scoped_key(&p.actor, &k)),
        expected_version: if_match(headers)?,
        correlation_id: correlation,
    })
}

/// An engine error, with a conflict under `If-Match` turned into 412.
pub(crate) fn map_engine(e: EngineError, conditional: bool) -> ApiError {
    match e {
        EngineError::Conflict { expected: ExpectedVersion::Exact(want), actual, .. }
            if conditional =>
        {
            ApiError::PreconditionFailed { expected: want, actual }
        }
        other => ApiError::Engine(other),
    }
}

/// What a command did, rebuilt from the log.
pub(crate) struct Executed {
    /// The response body.
    pub body: CommandResponse,
    /// The case as of right after the command.
    pub case: std::sync::Arc<Case>,
    /// A retry of an earlier call with the same key.
    pub replayed: bool,
}

/// Runs a command as `p` and reads back what it wrote.
pub(crate) async fn run(
    state: &AppState,
    p: &Principal,
    opts: CommandOptions,
    case: Option<&str>,
    command: Command,
) -> Result<Executed, ApiError> {
    let conditional = opts.expected_version.is_some();
    if matches!(command, Command::Submit(_)) {
        // The submission quota per key (after authentication, so that a key
        // in an Open311 form body counts too). A refused submission writes
        // nothing.
        if let Err(refused) = state.limiters.submission(&p.key_id) {
            state.metrics.observe_rate_limited(refused.limit);
            return Err(refused.into());
        }
    }
    let started = Instant::now();
    let result = match (case, command) {
        (None, Command::Submit(s)) => state.engine.submit(&p.actor_id, s, opts).await,
        (Some(id), c) => {
            let id = case_id(id)?;
            match state.engine.execute(&p.actor_id, &id, c, opts).await {
                // A refusal (rule, authority, version) on a case the caller
                // may not read is answered like a missing case, so that a
                // command is no existence oracle either: the read scope's
                // 404, not the engine's 403 or 409 (and a missing case
                // gets that same 404, word for word).
                Err(
                    e @ (EngineError::Rejected(_)
                    | EngineError::Conflict { .. }
                    | EngineError::NotFound(_)),
                ) => {
                    crate::scope::readable_case(state, p, &id).await?;
                    Err(e)
                }
                other => other,
            }
        }
        (None, _) => return Err(ApiError::Internal("a command without a case".into())),
    }
    .map_err(|e| map_engine(e, conditional))?;
    if !result.deduplicated {
        state.metrics.observe_append(started.elapsed());
    }
    let outcome = result.outcome.ok_or_else(|| {
        ApiError::Internal("the command appended nothing and has no outcome".into())
    })?;
    // The engine returns what it wrote (and, on a replay, the case as the
    // first call left it): nothing is read back or folded again here.
    let case = result.case;
    let personal = Scope::of(p).may_read_personal_of(&case);
    let events: Vec<EventView> = result
        .records
        .iter()
        .zip(&result.events)
        .map(|(r, e)| EventView::new(r, e, personal, &state.pseudonyms))
        .collect();
    // Read-your-writes for reports and Open311 listings, served from the projections.
    state.wait_for_projections(outcome.last_position, state.options.write_visibility_wait).await;
    let reg = state.engine.registry();
    let body = CommandResponse {
        case: CaseView::new(&case, &reg, p, &state.pseudonyms),
        events,
        first_position: outcome.first_position,
        last_position: outcome.last_position,
    };
    state.record_read(p, &case, &body.case.personal_fields(), "command").await?;
    Ok(Executed { body, case, replayed: result.deduplicated })
}
