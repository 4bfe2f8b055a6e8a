//! The native JSON API under `/api/v1`: lifecycle commands, case reads,
//! projection reports, replay, audit and stats.
//!
//! Every command goes through the crate's `command::run`, shared with Open311:
//! an idempotent retry returns the *original* response because the engine
//! returns the first call's events, records and case.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gridcase_engine::domain::Command;
use gridcase_engine::log::hex;
use gridcase_engine::time::Timestamp;
use gridcase_engine::Error as EngineError;
use gridcase_projections::{Period, PeriodKind};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::command::{command_options, run};
use crate::dashboard::{scoped_backlog, scoped_chains, scoped_overdue};
use crate::dto::*;
use crate::extract::{case_id, JsonBody, QueryParams};
use crate::scope::{readable_case, Scope};
use crate::state::AppState;
use crate::ApiError;

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

async fn execute(
    state: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    case: Option<&str>,
    command: Command,
) -> Result<Response, ApiError> {
    let submit = case.is_none();
    let opts = command_options(p, headers)?;
    let done = run(state, p, opts, case, command).await?;
    let status = if submit { StatusCode::CREATED } else { StatusCode::OK };
    let mut res = (status, Json(&done.body)).into_response();
    let h = res.headers_mut();
    h.insert(header::ETAG, etag(done.case.version));
    if submit {
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/cases/{}", done.case.id)) {
            h.insert(header::LOCATION, v);
        }
    }
    if done.replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// Opens a case.
#[utoipa::path(
    post, path = "/api/v1/cases", tag = "lifecycle",
    summary = "Submit a request (open a case)",
    description = "The engine decides whether the key's actor may submit here (residents, the grid's own grid worker, staff of its community, street or district). A retry with the same Idempotency-Key returns the original response and appends nothing.",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 100 visible ASCII characters; a retry with the same key and body returns the original response, a different body is 409"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Stored on the events (default: the request id)"),
    ),
    request_body = SubmitBody,
    responses(
        (status = 201, description = "The case was opened", body = CommandResponse, headers(("ETag" = String, description = "The case version, quoted"), ("Location" = String))),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not authorised by the domain rules", body = ErrorBody),
        (status = 409, description = "Idempotency key reused with another body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, bad category, location or value", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitBody>,
) -> Result<Response, ApiError> {
    let command = body.into_command(&principal)?;
    execute(&state, &principal, &headers, None, command).await
}

macro_rules! lifecycle {
    ($name:ident, $path:tt, $body:ident, $summary:tt, |$b:ident| $to_command:expr) => {
        #[doc = $summary]
        #[utoipa::path(
            post, path = $path, tag = "lifecycle", summary = $summary,
            params(
                ("id" = String, Path, description = "Case id, e.g. GC0000001"),
                ("Idempotency-Key" = Option<String>, Header, description = "1 to 100 visible ASCII characters; a retry with the same key and body returns the original response, a different body is 409"),
                ("If-Match" = Option<String>, Header, description = "The case's ETag (its quoted version); the command runs only at that version, else 412"),
                ("X-Correlation-Id" = Option<String>, Header, description = "Stored on the events (default: the request id)"),
            ),
            request_body = $body,
            responses(
                (status = 200, description = "The command was applied (or replayed: header Idempotent-Replayed)", body = CommandResponse, headers(("ETag" = String, description = "The case version after the command, quoted"))),
                (status = 400, description = "Malformed request", body = ErrorBody),
                (status = 401, description = "No or unknown API key", body = ErrorBody),
                (status = 403, description = "Not authorised by the domain rules (rule not_authorised)", body = ErrorBody),
                (status = 404, description = "No such case", body = ErrorBody),
                (status = 409, description = "The case's state does not allow this (rule invalid_transition), or the Idempotency-Key was used for another request", body = ErrorBody),
                (status = 412, description = "If-Match does not match the case's version", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not JSON", body = ErrorBody),
                (status = 422, description = "Unknown field or an argument the rules refuse (rule invalid_argument)", body = ErrorBody),
            ),
            security(("bearer" = []))
        )]
        pub async fn $name(
            State(state): State<AppState>,
            principal: Principal,
            Path(id): Path<String>,
            headers: HeaderMap,
            JsonBody($b): JsonBody<$body>,
        ) -> Result<Response, ApiError> {
            let id = case_id(&id)?.to_string();
            let command: Result<Command, ApiError> = $to_command;
            execute(&state, &principal, &headers, Some(&id), command?).await
        }
    };
}

lifecycle!(
    assign,
    "/api/v1/cases/{id}/assign",
    AssignBody,
    "Assign a grid worker (社区分单)",
    |b| Ok(Command::Assign { worker: b.worker })
);
lifecycle!(reject, "/api/v1/cases/{id}/reject", ReasonBody, "Reject as invalid", |b| Ok(
    Command::Reject { reason: b.reason }
));
lifecycle!(merge, "/api/v1/cases/{id}/merge", MergeBody, "Merge into a duplicate", |b| Ok(
    Command::Merge { into: b.into }
));
lifecycle!(withdraw, "/api/v1/cases/{id}/withdraw", ReasonBody, "Withdraw (the resident)", |b| Ok(
    Command::Withdraw { reason: b.reason }
));
lifecycle!(
    escalate,
    "/api/v1/cases/{id}/escalate",
    ReasonBody,
    "Escalate to the street (街镇呼叫)",
    |b| Ok(Command::Escalate { reason: b.reason })
);
lifecycle!(
    dispatch,
    "/api/v1/cases/{id}/dispatch",
    DispatchBody,
    "Dispatch to departments (街道派单)",
    |b| Ok(Command::Dispatch { departments: b.departments, lead: b.lead, note: b.note })
);
lifecycle!(
    claim,
    "/api/v1/cases/{id}/claim",
    EmptyBody,
    "Claim for a department (单位领单)",
    |_b| Ok(Command::Claim)
);
lifecycle!(
    return_case,
    "/api/v1/cases/{id}/return",
    ReasonBody,
    "Return as not the department's job (退单)",
    |b| Ok(Command::Return { reason: b.reason })
);
lifecycle!(
    request_extension,
    "/api/v1/cases/{id}/extension",
    ExtensionBody,
    "Ask for an extension (延期)",
    |b| Ok(Command::RequestExtension { until: parse_time("until", &b.until)?, reason: b.reason })
);
lifecycle!(
    decide_extension,
    "/api/v1/cases/{id}/extension/decision",
    ExtensionDecisionBody,
    "Approve or refuse a pending extension",
    |b| Ok(Command::DecideExtension { approve: b.approve, reason: b.reason })
);
lifecycle!(
    supervise,
    "/api/v1/cases/{id}/supervise",
    NoteBody,
    "Supervise an overdue case (督办)",
    |b| Ok(Command::Supervise { note: b.note })
);
lifecycle!(resolve, "/api/v1/cases/{id}/resolve", NoteBody, "Resolve (the holder)", |b| Ok(
    Command::Resolve { note: b.note }
));
lifecycle!(
    callback,
    "/api/v1/cases/{id}/callback",
    CallbackBody,
    "Record the resident's callback (回访)",
    |b| Ok(Command::Callback {
        satisfaction: b.satisfaction.into(),
        solved: b.solved,
        note: b.note
    })
);
lifecycle!(
    reopen,
    "/api/v1/cases/{id}/reopen",
    ReasonBody,
    "Reopen to the last holders (重办)",
    |b| Ok(Command::Reopen { reason: b.reason })
);
lifecycle!(close, "/api/v1/cases/{id}/close", CloseBody, "Close after the callback", |b| Ok(
    Command::Close { note: b.note }
));

/// A case's state.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}", tag = "cases",
    summary = "A case's current state",
    description = "Only for callers whose scope covers the case (else 404, as for a missing case). Contact details and the resident's real id only for those who may read its personal data (the resident, the staff of its community and of the units holding it, supervisors, auditors); others get `contact: null`, `contact_redacted: true` and a pseudonym `resident:~…`. Showing them is recorded as a PersonalDataRead (see /api/v1/cases/{id}/reads).",
    params(
        ("id" = String, Path, description = "Case id"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag; 304 when the case has not changed"),
    ),
    responses(
        (status = 200, description = "The case", body = CaseView, headers(("ETag" = String, description = "The case version, quoted"))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_case(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let case = readable_case(&state, &principal, &case_id(&id)?).await?;
    let tag = etag(case.version);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let view = CaseView::new(&case, &state.engine.registry(), &principal, &state.pseudonyms);
    state.record_read(&principal, &case, &view.personal_fields(), "api").await?;
    Ok(([(header::ETAG, tag)], Json(view)).into_response())
}

/// A case's readable history.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}/timeline", tag = "cases",
    summary = "A case's timeline: who did what, when and why",
    description = "404 outside the caller's scope. A resident actor is shown by pseudonym unless the caller may read the case's personal data.",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The timeline", body = TimelineResponse),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let id = case_id(&id)?;
    let case = readable_case(&state, &principal, &id).await?;
    let personal = Scope::of(&principal).may_read_personal_of(&case);
    let history = state.engine.history(&id).await?;
    let mut shown_real = false;
    let entries = gridcase_projections::timeline::timeline(&history, &state.engine.registry())
        .into_iter()
        .map(|e| {
            let actor = state.pseudonyms.shown(&e.actor, personal);
            shown_real |= is_real_resident(&actor);
            // The words name the resident by id too: name the pseudonym.
            let who = if actor == e.actor {
                e.who.clone()
            } else {
                actor.replacen("resident:", "resident ", 1)
            };
            (e, actor, who)
        })
        .map(|(e, actor, who)| TimelineEntryView {
            position: e.position,
            version: e.version,
            at: time(e.at),
            actor,
            who,
            event_type: e.event_type,
            what: e.what,
            why: e.why,
        })
        .collect();
    if shown_real {
        state.record_read(&principal, &case, &["submitted_by"], "api").await?;
    }
    Ok(Json(TimelineResponse { case_id: id.to_string(), entries }))
}

/// A case's escalation chain.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}/chain", tag = "cases",
    summary = "A case's escalation chain: every hop up and down the hierarchy",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The chain (see the projections crate's CaseChain)", body = Object),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn case_chain(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = case_id(&id)?;
    readable_case(&state, &principal, &id).await?;
    let history = state.engine.history(&id).await?;
    let chain = gridcase_projections::chains::chain_of(&history)
        .ok_or_else(|| ApiError::NotFound(format!("case {id:?} has no chain")))?;
    Ok(Json(to_value(&chain)?))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("cannot encode a report: {e}")))
}

/// A `now` for reports.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The time to compute for (RFC 3339; default: now).
    pub now: Option<String>,
}

/// The rates query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatesQuery {
    /// A day (2026-03-03), ISO week (2026-W10) or month (2026-03); default: this month.
    pub period: Option<String>,
    /// The target resolution rate in percent (default 98.5).
    pub target: Option<f64>,
}

/// The ranking query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankingQuery {
    /// A month (2026-03); default: this month.
    pub month: Option<String>,
    /// The target resolution rate in percent (default 98.5).
    pub target: Option<f64>,
}

/// No query parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct NoQuery {}

fn now_or(state: &AppState, text: Option<&str>) -> Result<Timestamp, ApiError> {
    match text {
        Some(t) => state.engine.registry().zone.parse(t).map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!("{t:?} is not a time; use RFC 3339, e.g. 2026-03-03T16:00:00+08:00"),
            )
        }),
        None => Ok(state.engine.clock().now()),
    }
}

fn target(t: Option<f64>) -> Result<f64, ApiError> {
    gridcase_projections::rates::check_target(
        t.unwrap_or(gridcase_projections::rates::DEFAULT_TARGET_PERCENT),
    )
    .map_err(|e| ApiError::bad_request("invalid_target", e.to_string()))
}

fn period(text: &str) -> Result<Period, ApiError> {
    Period::parse(text).map_err(|e| ApiError::bad_request("invalid_period", e.to_string()))
}

/// Runs `f` on the live projections and wraps its result.
fn report<T: serde::Serialize>(
    state: &AppState,
    now: Timestamp,
    f: impl FnOnce(&gridcase_projections::ProjectionSet) -> Result<T, ApiError>,
) -> Result<Json<ReportResponse>, ApiError> {
    let (position, value) = {
        let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
        (set.position(), f(&set)?)
    };
    Ok(Json(ReportResponse {
        position,
        head_position: state.engine.log().head().position,
        now: time(now),
        report: to_value(&value)?,
    }))
}

/// The grid backlog.
#[utoipa::path(
    get, path = "/api/v1/backlog", tag = "reports",
    summary = "Backlog per grid, community, street and the district",
    description = "Narrowed to the caller's scope: only the units it may read; the district's totals only for supervisors and auditors.",
    params(AtQuery),
    responses(
        (status = 200, description = "The backlog report", body = ReportResponse),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn backlog(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AtQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let scope = Scope::of(&principal);
    let now = now_or(&state, q.now.as_deref())?;
    report(&state, now, |set| scoped_backlog(set, now, &scope))
}

/// Rates of every unit in a period.
#[utoipa::path(
    get, path = "/api/v1/rates", tag = "reports",
    summary = "Resolution, response, satisfaction, on-time, return and redo rates per unit",
    params(RatesQuery),
    responses(
        (status = 200, description = "The rates report", body = ReportResponse),
        (status = 400, description = "Bad period or target", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rates(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<RatesQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let scope = Scope::of(&principal);
    let now = state.engine.clock().now();
    let target = target(q.target)?;
    let wanted = q.period.as_deref().map(period).transpose()?;
    report(&state, now, |set| {
        let p = wanted.unwrap_or_else(|| {
            Period::containing(PeriodKind::Month, now, set.config().utc_offset_minutes)
        });
        let mut r = set.rates_report(p, target);
        r.units.retain(|u| scope.may_read_unit(set.registry(), &u.code));
        Ok(r)
    })
}

/// The monthly ranking.
#[utoipa::path(
    get, path = "/api/v1/rates/ranking", tag = "reports",
    summary = "Monthly ranking of streets, communities, grids and departments",
    params(RankingQuery),
    responses(
        (status = 200, description = "The ranking", body = ReportResponse),
        (status = 400, description = "Bad month or target", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn ranking(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<RankingQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let scope = Scope::of(&principal);
    let now = state.engine.clock().now();
    let target = target(q.target)?;
    let wanted = q.month.as_deref().map(period).transpose()?;
    report(&state, now, |set| {
        let m = wanted.unwrap_or_else(|| {
            Period::containing(PeriodKind::Month, now, set.config().utc_offset_minutes)
        });
        let mut r = set.ranking(m, target)?;
        for k in &mut r.kinds {
            k.ranked.retain(|row| scope.may_read_unit(set.registry(), &row.unit.code));
        }
        Ok(r)
    })
}

/// Escalation chains.
#[utoipa::path(
    get, path = "/api/v1/chains", tag = "reports",
    summary = "Escalation chains: shapes, time per level, escalations per unit and category",
    responses(
        (status = 200, description = "The chain report", body = ReportResponse),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn chains(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(_q): QueryParams<NoQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let now = state.engine.clock().now();
    let scope = Scope::of(&principal);
    report(&state, now, |set| scoped_chains(set, &scope))
}

/// Open cases past or near their limit.
#[utoipa::path(
    get, path = "/api/v1/overdue", tag = "reports",
    summary = "Open cases past or near their resolution limit, by holder",
    params(AtQuery),
    responses(
        (status = 200, description = "The overdue report", body = ReportResponse),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn overdue(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AtQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let scope = Scope::of(&principal);
    let now = now_or(&state, q.now.as_deref())?;
    report(&state, now, |set| scoped_overdue(set, now, &scope))
}

/// The places query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlacesQuery {
    /// Earliest submission (RFC 3339; default: 30 days before `to`).
    pub from: Option<String>,
    /// Latest submission (RFC 3339; default: now).
    pub to: Option<String>,
    /// Only places within this unit (a street, community or grid code).
    pub unit: Option<String>,
    /// At most this many rows, most cases first (default 50, at most 10,000).
    pub top: Option<usize>,
}

/// Cases grouped by the micro-grid they were resolved to.
#[utoipa::path(
    get, path = "/api/v1/places", tag = "reports",
    summary = "Cases per micro-grid (submitted in a window), and how their locations were resolved",
    params(PlacesQuery),
    responses(
        (status = 200, description = "The places report", body = ReportResponse),
        (status = 400, description = "Bad time, unit or top", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn places(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<PlacesQuery>,
) -> Result<Json<ReportResponse>, ApiError> {
    principal.require_staff()?;
    let to = now_or(&state, q.to.as_deref())?;
    let from = match q.from.as_deref() {
        Some(t) => now_or(&state, Some(t))?,
        None => to.plus_ms(-30 * 24 * 3_600_000),
    };
    let top = q.top.unwrap_or(50);
    if top == 0 || top > 10_000 {
        return Err(ApiError::bad_request("invalid_top", "top must be 1 to 10000"));
    }
    report(&state, to, |set| {
        let reg = set.registry();
        if let Some(u) = &q.unit {
            if !reg.units.contains_key(u) {
                return Err(ApiError::bad_request(
                    "invalid_unit",
                    format!("unit {u:?} is not in the registry"),
                ));
            }
        }
        let mut r = set
            .cases()
            .by_place(from, to, |place| q.unit.as_deref().is_none_or(|u| reg.is_within(place, u)));
        r.places.truncate(top);
        Ok(r)
    })
}

/// The replay query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// Replay up to this log position (inclusive).
    pub position: Option<u64>,
    /// Replay every record recorded at or before this time (RFC 3339).
    pub as_of: Option<String>,
    /// Include the reports (default true); false returns digests only.
    pub reports: Option<bool>,
}

/// The projections as they stood at a past position or time.
#[utoipa::path(
    get, path = "/api/v1/replay", tag = "audit",
    summary = "Replay the projections from position 1 up to a position or time",
    description = "Give exactly one of position and as_of. The digests of a replay to the live position equal the live projections' digests. One replay runs at a time (503 otherwise).",
    params(ReplayQuery),
    responses(
        (status = 200, description = "Digests and reports as of the point", body = ReplayResponse),
        (status = 400, description = "Neither or both of position and as_of, or a bad time", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
        (status = 503, description = "Another replay is running", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<ReplayQuery>,
) -> Result<Json<ReplayResponse>, ApiError> {
    principal.require_staff()?;
    let _permit = state
        .replay_gate
        .try_acquire()
        .map_err(|_| ApiError::Busy("another replay is running; retry when it is done".into()))?;
    let log = state.engine.log().clone();
    let config = gridcase_projections::Config::for_zone(&state.engine.registry().zone);
    let (set, now) = match (q.position, q.as_of.as_deref()) {
        (Some(p), None) => {
            let set = gridcase_projections::as_of_position(&log, config, p).await?;
            let now = set.last_recorded_at();
            (set, now)
        }
        (None, Some(t)) => {
            let t = state.engine.registry().zone.parse(t).map_err(|_| {
                ApiError::bad_request(
                    "invalid_time",
                    format!("as_of {t:?} is not a time; use RFC 3339"),
                )
            })?;
            (gridcase_projections::as_of_time(&log, config, t).await?, t)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give exactly one of position=N and as_of=TIME",
            ))
        }
    };
    let period = Period::containing(PeriodKind::Month, now, set.config().utc_offset_minutes);
    let reports = if q.reports.unwrap_or(true) {
        let target = gridcase_projections::rates::DEFAULT_TARGET_PERCENT;
        let scope = Scope::of(&principal);
        let mut rates = set.rates_report(period, target);
        rates.units.retain(|u| scope.may_read_unit(set.registry(), &u.code));
        Some((
            scoped_backlog(&set, now, &scope)?,
            to_value(&rates)?,
            scoped_chains(&set, &scope)?,
            scoped_overdue(&set, now, &scope)?,
        ))
    } else {
        None
    };
    let (backlog, rates, chains, overdue) = match reports {
        Some((b, r, c, o)) => (Some(b), Some(r), Some(c), Some(o)),
        None => (None, None, None, None),
    };
    Ok(Json(ReplayResponse {
        position: set.position(),
        head_hash: hex(&set.head_hash()),
        last_recorded_at: time(set.last_recorded_at()),
        now: time(now),
        digests: set.digests().into(),
        period: period.label(),
        backlog,
        rates,
        chains,
        overdue,
    }))
}

/// Walks the hash chain.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit",
    summary = "Walk and check the whole hash chain",
    description = "A broken chain is a successful audit with ok=false and the first bad position. One verification runs at a time (503 otherwise).",
    responses(
        (status = 200, description = "The verification result", body = VerifyResponse),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
        (status = 503, description = "Another verification is running", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit_verify(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<VerifyResponse>, ApiError> {
    principal.require_staff()?;
    let _permit = state.verify_gate.try_acquire().map_err(|_| {
        ApiError::Busy("another verification is running; retry when it is done".into())
    })?;
    match state.engine.log().verify().await.map_err(EngineError::from) {
        Ok(r) => Ok(Json(VerifyResponse {
            ok: true,
            events: r.events,
            head_position: r.head.position,
            head_hash: hex(&r.head.hash),
            bad_position: None,
            reason: None,
        })),
        Err(EngineError::Corruption { position, reason }) => Ok(Json(VerifyResponse {
            ok: false,
            events: 0,
            head_position: 0,
            head_hash: String::new(),
            bad_position: Some(position),
            reason: Some(reason),
        })),
        Err(e) => Err(e.into()),
    }
}

/// Store and server figures.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "audit",
    summary = "Store size, head, open cases and read-model positions",
    responses(
        (status = 200, description = "The figures", body = StatsResponse),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a staff key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<StatsResponse>, ApiError> {
    principal.require_staff()?;
    let log = state.engine.log();
    let head = log.head();
    let reg = state.engine.registry();
    Ok(Json(StatsResponse {
        store: log.describe(),
        size_bytes: log.size_on_disk().await?,
        head_position: head.position,
        head_hash: hex(&head.hash),
        open_cases: state.engine.open_case_ids().len(),
        indexed_cases: state.projections.read().unwrap_or_else(|p| p.into_inner()).cases().len(),
        projection_position: state.projection_position(),
        // The Open311 listing is a projection: it is where they are.
        index_position: state.projection_position(),
        registry: RegistryStats {
            units: reg.units.len(),
            staff: reg.staff.len(),
            categories: reg.categories.len(),
        },
        uptime_seconds: state.metrics.uptime().as_secs(),
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "Request counts and latencies per route and status, append latency, projection lag", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let lags = state.lags().await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(lags),
    )
        .into_response()
}

/// One recorded read of a case's personal data.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReadView {
    /// Log position of the `PersonalDataRead` event.
    pub position: u64,
    /// When (the first read of its minute), in the district's zone.
    pub at: String,
    /// Who read (staff id or actor).
    pub reader: String,
    /// Which personal fields were shown (`contact`, `submitted_by`).
    pub fields: Vec<String>,
    /// Where (`api`, `command`, `dashboard`, `open311`, `feed`, `cli`).
    pub surface: String,
}

/// Who read a case's personal data.
#[utoipa::path(
    get, path = "/api/v1/cases/{id}/reads", tag = "audit",
    summary = "Who was shown this case's personal data (contact, the resident's id), and when",
    description = "For district supervisors and auditors. Reads are recorded at most once per reader per case per minute; the resident's own reads are not recorded. The same list as `gridcase audit reads --case ID`.",
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The reads, oldest first", body = [ReadView]),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Not a supervisor or auditor key", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn case_reads(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReadView>>, ApiError> {
    if Scope::of(&principal) != Scope::All {
        return Err(ApiError::Forbidden(
            "the read audit is for district supervisors and auditors".into(),
        ));
    }
    let id = case_id(&id)?;
    readable_case(&state, &principal, &id).await?;
    let zone = state.engine.registry().zone.clone();
    let reads = state.engine.personal_reads(&id).await?;
    Ok(Json(
        reads
            .into_iter()
            .map(|r| ReadView {
                position: r.position,
                at: zone.format(r.at),
                reader: r.reader,
                fields: r.fields,
                surface: r.surface,
            })
            .collect(),
    ))
}
