//! Who is calling: an API key resolved to an actor of the registry.
//!
//! The HTTP layer only authenticates. Whether the actor may run a command
//! is the engine's decision ([`decide`](gridcase_engine::domain::decide()), made with
//! the same role and unit the CLI would use, so the API cannot grant more
//! than the domain rules do. Who may read which case, and its personal
//! data, is [`crate::scope::Scope`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use gridcase_engine::domain::ActorId;
use gridcase_engine::org::Role;
use gridcase_engine::Error as EngineError;

use crate::session;
use crate::state::AppState;
use crate::ApiError;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The actor id the engine records: a staff id or `resident:<id>`.
    pub actor: String,
    /// The same actor, typed, as the engine's commands take it.
    pub actor_id: ActorId,
    /// The actor's role, from the registry.
    pub role: Role,
    /// The unit the role is bound to (none for residents).
    pub unit: Option<String>,
    /// The id of the key used (for logs; not secret).
    pub key_id: String,
}

impl Principal {
    /// Staff of any role (not a resident).
    pub fn is_staff(&self) -> bool {
        self.role != Role::Resident
    }

    /// Refuses residents: aggregate reports, audits and the event feed are for staff.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this resource is for staff keys; residents can read their own cases".into(),
            ))
        }
    }
}

/// Resolves a presented key to a principal.
pub fn authenticate(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let entry = state.keys.lookup(key.trim()).ok_or_else(|| {
        ApiError::Unauthenticated("the API key is not known to this server".into())
    })?;
    principal_of(state, entry)
}

/// The principal a key entry acts as (a key presented, or a session opened
/// with one).
pub fn principal_of(state: &AppState, entry: crate::keys::KeyEntry) -> Result<Principal, ApiError> {
    // Role and unit come from the registry at request time: a staff member
    // who moved or retired acts with their current standing, or not at all.
    let cannot_act = |e: EngineError| {
        ApiError::Forbidden(format!("the key's actor {:?} cannot act: {e}", entry.actor))
    };
    let actor_id: ActorId = entry.actor.parse().map_err(cannot_act)?;
    let actor = state.engine.actor(&actor_id).map_err(cannot_act)?;
    Ok(Principal {
        actor: actor.id,
        actor_id,
        role: actor.role,
        unit: actor.unit,
        key_id: entry.id,
    })
}

/// The key in an `Authorization: Bearer <key>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not ASCII".into()))?;
    let Some((scheme, key)) = text.split_once(' ') else {
        return Err(ApiError::Unauthenticated("use `Authorization: Bearer <api key>`".into()));
    };
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(ApiError::Unauthenticated("use `Authorization: Bearer <api key>`".into()));
    }
    Ok(Some(key.trim().to_string()))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = match bearer(&parts.headers)? {
            Some(key) => authenticate(state, &key)?,
            None => match session::cookie_token(&parts.headers) {
                Some(token) => from_session(state, parts, &token)?,
                None => {
                    return Err(ApiError::Unauthenticated(
                        "this resource needs an API key: send `Authorization: Bearer <api key>` (or sign in to the dashboard)".into(),
                    ))
                }
            },
        };
        tracing::Span::current().record("actor", principal.actor.as_str());
        Ok(principal)
    }
}

/// The principal of a dashboard session cookie. A request that could change
/// something (any method but GET, HEAD and OPTIONS) must also carry the
/// session's CSRF token: the cookie alone is what a forged cross-site
/// request would have.
fn from_session(state: &AppState, parts: &Parts, token: &str) -> Result<Principal, ApiError> {
    let s = state.sessions.get(token).ok_or_else(|| {
        ApiError::Unauthenticated("the session has expired or ended; sign in again".into())
    })?;
    if !parts.method.is_safe() {
        let presented = parts.headers.get(session::CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !session::Sessions::csrf_ok(&s, presented) {
            return Err(ApiError::Forbidden(format!(
                "a request signed in by cookie must carry the session's CSRF token in {}",
                session::CSRF_HEADER
            )));
        }
    }
    let entry = state.keys.lookup_hash(&s.key_hash).ok_or_else(|| {
        ApiError::Unauthenticated("the key this session was opened with was revoked".into())
    })?;
    principal_of(state, entry)
}
