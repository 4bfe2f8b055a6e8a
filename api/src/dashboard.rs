//! The dashboard: the page at `/`, its assets, sign-in, and the JSON it
//! reads under `/api/v1/dashboard/...`.
//!
//! Every figure comes from the projections: the live [`ProjectionSet`] the
//! server keeps, or, with `?as_of=TIME`, the set
//! [`as_of_time`](gridcase_projections::as_of_time) rebuilds, the very call
//! `gridcase replay --as-of` makes, so the page's past equals the CLI's.
//! The endpoints only narrow reports to what the caller may read
//! ([`Scope`], the one rule) and arrange them for drawing; they compute no
//! figure of their own. Each answer carries the projections' position and
//! combined digest, which an auditor can cite and compare with `replay`.
//!
//! Answers are cached per (endpoint, query, scope, position and, at "now",
//! the minute): the live set changes only when a record is applied, and
//! aging and deadlines move by the minute at most as far as a wall screen
//! shows. As-of sets are kept for the last few times asked for (moving a
//! slider asks for the same time from several views at once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gridcase_engine::log::Position;
use gridcase_engine::org::{Registry, UnitKind};
use gridcase_engine::time::Timestamp;
use gridcase_projections::{Period, PeriodKind, ProjectionSet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{principal_of, Principal};
use crate::dto::{CaseView, ErrorBody};
use crate::extract::{case_id, JsonBody, QueryParams};
use crate::scope::Scope;
use crate::session;
use crate::state::AppState;
use crate::ApiError;

/// How many as-of sets are kept.
const AS_OF_SETS: usize = 4;
/// How many answers are kept before the cache is emptied.
const ANSWERS: usize = 512;
/// How long a live answer waits for the projections to apply what the log
/// already holds, so that a page reacting to a feed event sees that event.
const CATCH_UP_WAIT: Duration = Duration::from_millis(1500);

/// An as-of set and its digest (computed once).
struct Past {
    at: Timestamp,
    set: ProjectionSet,
    digest: String,
}

/// The dashboard's caches (see the module docs).
#[derive(Default)]
pub struct DashboardCache {
    answers: Mutex<HashMap<String, Arc<Value>>>,
    digest: Mutex<Option<(Position, String)>>,
    past: tokio::sync::Mutex<VecDeque<Arc<Past>>>,
}

impl std::fmt::Debug for DashboardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DashboardCache")
    }
}

impl DashboardCache {
    fn answer(&self, key: &str) -> Option<Arc<Value>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn keep(&self, key: String, value: Arc<Value>) {
        let mut m = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= ANSWERS {
            m.clear();
        }
        m.insert(key, value);
    }

    /// The live set's combined digest, computed once per position.
    fn live_digest(&self, set: &ProjectionSet) -> String {
        let mut d = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        match &*d {
            Some((p, text)) if *p == set.position() => text.clone(),
            _ => {
                let text = set.digests().combined;
                *d = Some((set.position(), text.clone()));
                text
            }
        }
    }

    async fn past(&self, state: &AppState, at: Timestamp) -> Result<Arc<Past>, ApiError> {
        // One rebuild at a time, under the lock: a second view asking for
        // the same moment waits and then finds it here.
        let mut list = self.past.lock().await;
        if let Some(p) = list.iter().find(|p| p.at == at) {
            return Ok(p.clone());
        }
        let config = gridcase_projections::Config::for_zone(&state.engine.registry().zone);
        let set = gridcase_projections::as_of_time(state.engine.log(), config, at).await?;
        let digest = set.digests().combined;
        let p = Arc::new(Past { at, set, digest });
        list.push_front(p.clone());
        list.truncate(AS_OF_SETS);
        Ok(p)
    }
}

/// The moment a dashboard answer is for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// Show the projections as they were at this time (RFC 3339, or a
    /// local date-time in the district's zone); default: now, live.
    pub as_of: Option<String>,
}

/// The rates view's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RatesViewQuery {
    /// As in [`AsOfQuery`].
    pub as_of: Option<String>,
    /// A day (2026-03-03), ISO week (2026-W10) or month (2026-03); default:
    /// the month containing the moment shown.
    pub period: Option<String>,
    /// The target resolution rate in percent (default 98.5).
    pub target: Option<f64>,
}

/// What the sign-in form posts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// An API key (`gck_...`), as `gridcase apikey create` printed it.
    pub key: String,
}

/// A signed-in session, as the page sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The actor (staff id or `resident:<id>`).
    pub actor: String,
    /// The actor's name from the registry (the id for residents).
    pub name: String,
    /// The role.
    pub role: String,
    /// The unit the role is bound to.
    pub unit: Option<String>,
    /// The token to send in `X-CSRF-Token` with every state-changing request.
    pub csrf: String,
    /// Seconds the session lasts from sign-in.
    pub expires_in_seconds: u64,
}

fn parse_as_of(state: &AppState, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => state.engine.registry().zone.parse(t).map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!(
                    "as_of {t:?} is not a time; use RFC 3339 or a local time such as 2026-03-15T09:30"
                ),
            )
        }),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("cannot encode a report: {e}")))
}

fn json_response(value: Arc<Value>) -> Response {
    // Answers depend on the caller (scope) and on time: never stored by
    // shared caches, and revalidated by the page on every change.
    let mut res = Json(&*value).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    res
}

/// Computes (or finds) one answer: `f` gets the projections of the moment
/// asked for, that moment, and the caller's scope; the answer is wrapped
/// with the position, digest and moment.
async fn answer(
    state: &AppState,
    principal: &Principal,
    name: &str,
    query: String,
    as_of: Option<&str>,
    f: impl FnOnce(&ProjectionSet, Timestamp, &Scope) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let scope = Scope::of(principal);
    if !scope.sees_aggregates() {
        return Err(ApiError::Forbidden(
            "the dashboard's figures are for staff; residents can read their own cases".into(),
        ));
    }
    let zone = state.engine.registry().zone.clone();
    let wrap = |set: &ProjectionSet, at: Timestamp, live: bool, digest: String, report: Value| {
        json!({
            "live": live,
            "as_of": at,
            "as_of_text": zone.format(at),
            "position": set.position(),
            "head_position": state.engine.log().head().position,
            "digest": digest,
            "zone": zone.name(),
            "offset_minutes": zone.offset_minutes(),
            "report": report,
        })
    };
    match parse_as_of(state, as_of)? {
        Some(at) => {
            let key = format!("{name}|{query}|{}|past:{}", scope.key(), at.0);
            if let Some(v) = state.dashboard.answer(&key) {
                return Ok(json_response(v));
            }
            let past = state.dashboard.past(state, at).await?;
            let report = f(&past.set, at, &scope)?;
            let v = Arc::new(wrap(&past.set, at, false, past.digest.clone(), report));
            state.dashboard.keep(key, v.clone());
            Ok(json_response(v))
        }
        None => {
            let head = state.engine.log().head().position;
            state.wait_for_projections(head, CATCH_UP_WAIT).await;
            let now = state.engine.clock().now();
            let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
            let key = format!(
                "{name}|{query}|{}|live:{}:{}",
                scope.key(),
                set.position(),
                now.0.div_euclid(60_000)
            );
            if let Some(v) = state.dashboard.answer(&key) {
                return Ok(json_response(v));
            }
            let report = f(&set, now, &scope)?;
            let digest = state.dashboard.live_digest(&set);
            let v = Arc::new(wrap(&set, now, true, digest, report));
            drop(set);
            state.dashboard.keep(key, v.clone());
            Ok(json_response(v))
        }
    }
}

/// Who is signed in, the district, its units as far as the caller may see
/// them, and the time range the slider covers.
#[utoipa::path(
    get, path = "/api/v1/dashboard/meta", tag = "dashboard",
    summary = "The dashboard's frame: caller, district, units in scope, time range",
    params(AsOfQuery),
    responses(
        (status = 200, description = "The frame", body = Object),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn meta(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    let first = match state.engine.log().read_all(1, 1).await {
        Ok(recs) => recs.first().map(|r| r.recorded_at),
        Err(e) => return Err(ApiError::Engine(e.into())),
    };
    let me = principal.clone();
    answer(&state, &principal, "meta", String::new(), q.as_of.as_deref(), move |set, at, scope| {
        let reg = set.registry();
        let units: Vec<Value> = reg
            .units
            .values()
            .filter(|u| !u.retired && !matches!(u.kind, UnitKind::MicroGrid))
            .filter(|u| scope.may_read_unit(reg, &u.code))
            .map(|u| json!({"code": u.code, "name": u.name, "kind": u.kind, "parent": u.parent}))
            .collect();
        let periods = |k: PeriodKind| -> Vec<String> {
            set.rates().periods(k).into_iter().map(|p| p.label()).collect()
        };
        Ok(json!({
            "actor": me.actor,
            "name": reg.staff.get(&me.actor).map(|s| s.name.clone()).unwrap_or(me.actor.clone()),
            "role": me.role.as_str(),
            "unit": me.unit,
            "all": *scope == Scope::All,
            "district": reg.district().map(|d| json!({"code": d.code, "name": d.name})),
            "units": units,
            "categories": reg.categories.values().map(|c| (c.code.clone(), c.name.clone())).collect::<std::collections::BTreeMap<_, _>>(),
            "first_recorded_at": first,
            "last_recorded_at": set.last_recorded_at(),
            "default_period": default_period(set, at).label(),
            "periods": {"month": periods(PeriodKind::Month), "week": periods(PeriodKind::Week), "day": periods(PeriodKind::Day)},
            "target_percent": gridcase_projections::rates::DEFAULT_TARGET_PERCENT,
        }))
    })
    .await
}

/// The month containing `at`: what `gridcase rates` and `replay` show by default.
fn default_period(set: &ProjectionSet, at: Timestamp) -> Period {
    Period::containing(PeriodKind::Month, at, set.config().utc_offset_minutes)
}

/// The district's grids as GeoJSON, one feature per grid (the one source
/// the map draws; see [`district_geojson`]).
#[utoipa::path(
    get, path = "/api/v1/dashboard/map", tag = "dashboard",
    summary = "The grids in scope as a GeoJSON FeatureCollection",
    params(AsOfQuery),
    responses(
        (status = 200, description = "The map", body = Object),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn map(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &principal, "map", String::new(), q.as_of.as_deref(), |set, _, scope| {
        let reg = set.registry();
        Ok(district_geojson(reg, |code| scope.may_read_unit(reg, code)))
    })
    .await
}

/// The district's grids as a GeoJSON FeatureCollection, one feature per
/// grid that `keep` accepts, with `code`, `name`, `community` and `street`
/// properties.
///
/// With boundaries in the registry (the organisation file's `[geography]`),
/// a grid's shape is a MultiPolygon of its micro-grids' polygons (or its
/// own, for a grid without micro-grids). A registry without boundaries
/// gets a **schematic**: one square per grid, laid out in code order (so a
/// community's and a street's grids sit together), and the collection says
/// so (`"schematic": true`, which the page prints under the map).
pub fn district_geojson(reg: &Registry, keep: impl Fn(&str) -> bool) -> Value {
    let grids: Vec<_> = reg.units_of(UnitKind::Grid).filter(|g| !g.retired).collect();
    let props = |g: &gridcase_engine::org::Unit| {
        let community = reg.ancestor(&g.code, UnitKind::Community).map(|u| u.code.clone());
        let street = reg.ancestor(&g.code, UnitKind::Street).map(|u| u.code.clone());
        json!({"name": g.code, "code": g.code, "label": g.name, "community": community, "street": street})
    };
    if !reg.boundaries.is_empty() {
        // Each boundary belongs to a micro-grid (whose parent is its grid)
        // or to a grid without micro-grids.
        let mut by_grid: HashMap<&str, Vec<Value>> = HashMap::new();
        for (code, boundary) in &reg.boundaries {
            let grid = match reg.units.get(code) {
                Some(u) if u.kind == UnitKind::MicroGrid => u.parent.as_deref(),
                Some(u) if u.kind == UnitKind::Grid => Some(code.as_str()),
                _ => None,
            };
            let Some(grid) = grid else { continue };
            let polygons = boundary.polygons().into_iter().map(|rings| {
                let rings: Vec<Value> = rings
                    .into_iter()
                    .map(|ring| {
                        // GeoJSON rings are closed: the first vertex again at the end.
                        let mut pts: Vec<Value> =
                            ring.iter().map(|p| json!([p.lon(), p.lat()])).collect();
                        if let Some(first) = pts.first().cloned() {
                            pts.push(first);
                        }
                        Value::Array(pts)
                    })
                    .collect();
                Value::Array(rings)
            });
            by_grid.entry(grid).or_default().extend(polygons);
        }
        let features: Vec<Value> = grids
            .iter()
            .filter(|g| keep(&g.code))
            .filter_map(|g| {
                let polygons = by_grid.remove(g.code.as_str())?;
                Some(json!({
                    "type": "Feature",
                    "properties": props(g),
                    "geometry": {"type": "MultiPolygon", "coordinates": polygons},
                }))
            })
            .collect();
        return json!({"type": "FeatureCollection", "schematic": false, "features": features});
    }
    let columns = (grids.len() as f64).sqrt().ceil().max(1.0) as usize;
    // A cell of 0.01° with a small gap, so borders show.
    const CELL: f64 = 0.01;
    const GAP: f64 = 0.0012;
    let features: Vec<Value> = grids
        .iter()
        .enumerate()
        .filter(|(_, g)| keep(&g.code))
        .map(|(i, g)| {
            let (col, row) = ((i % columns) as f64, (i / columns) as f64);
            let (x0, y0) = (col * CELL, -row * CELL);
            let (x1, y1) = (x0 + CELL - GAP, y0 - CELL + GAP);
            json!({
                "type": "Feature",
                "properties": props(g),
                "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            })
        })
        .collect();
    json!({"type": "FeatureCollection", "schematic": true, "features": features})
}

/// The backlog per grid, community and street.
#[utoipa::path(
    get, path = "/api/v1/dashboard/backlog", tag = "dashboard",
    summary = "The backlog report (as `gridcase backlog --json`), narrowed to the caller's scope",
    params(AsOfQuery),
    responses(
        (status = 200, description = "The backlog", body = Object),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn backlog(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &principal, "backlog", String::new(), q.as_of.as_deref(), |set, at, scope| {
        scoped_backlog(set, at, scope)
    })
    .await
}

/// The backlog report narrowed to `scope`: the dashboard's and the native
/// API's (`/api/v1/backlog`, `/api/v1/replay`) one narrowing.
pub(crate) fn scoped_backlog(
    set: &ProjectionSet,
    at: Timestamp,
    scope: &Scope,
) -> Result<Value, ApiError> {
    let reg = set.registry();
    let mut r = set.backlog_report(at);
    for rows in [&mut r.grids, &mut r.communities, &mut r.streets] {
        rows.retain(|row| scope.may_read_unit(reg, &row.code));
    }
    let mut v = to_value(&r)?;
    if *scope != Scope::All {
        // The district's totals include units outside the caller's scope.
        v["district"] = Value::Null;
    }
    Ok(v)
}

/// Rates per unit for a period, and the monthly ranking with its change.
#[utoipa::path(
    get, path = "/api/v1/dashboard/rates", tag = "dashboard",
    summary = "Rates per unit (as `gridcase rates --json`) and the month's ranking with the change against the month before",
    params(RatesViewQuery),
    responses(
        (status = 200, description = "Rates and ranking", body = Object),
        (status = 400, description = "Bad time, period or target", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rates(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<RatesViewQuery>,
) -> Result<Response, ApiError> {
    let target = gridcase_projections::rates::check_target(
        q.target.unwrap_or(gridcase_projections::rates::DEFAULT_TARGET_PERCENT),
    )
    .map_err(|e| ApiError::bad_request("invalid_target", e.to_string()))?;
    let wanted = q
        .period
        .as_deref()
        .map(Period::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_period", e.to_string()))?;
    let query = format!("{:?}|{target}", wanted.map(|p| p.label()));
    answer(&state, &principal, "rates", query, q.as_of.as_deref(), |set, at, scope| {
        let reg = set.registry();
        let period = wanted.unwrap_or_else(|| default_period(set, at));
        let mut r = set.rates_report(period, target);
        r.units.retain(|u| scope.may_read_unit(reg, &u.code));
        let month = month_of(period);
        let ranking = set.ranking(month, target)?;
        let previous = match month {
            Period::Month(m) => set.ranking(Period::Month(m - 1), target).ok(),
            _ => None,
        };
        let before: HashMap<&str, u32> = previous
            .as_ref()
            .map(|p| {
                p.kinds
                    .iter()
                    .flat_map(|k| k.ranked.iter().map(|r| (r.unit.code.as_str(), r.rank)))
                    .collect()
            })
            .unwrap_or_default();
        let kinds: Vec<Value> = ranking
            .kinds
            .iter()
            .map(|k| {
                let ranked: Vec<Value> = k
                    .ranked
                    .iter()
                    .filter(|r| scope.may_read_unit(reg, &r.unit.code))
                    .map(|r| {
                        let prev = before.get(r.unit.code.as_str()).copied();
                        json!({
                            "rank": r.rank,
                            "previous_rank": prev,
                            // Positive: moved up (a smaller rank number).
                            "change": prev.map(|p| i64::from(p) - i64::from(r.rank)),
                            "unit": r.unit,
                        })
                    })
                    .collect();
                json!({"kind": k.kind, "ranked": ranked})
            })
            .collect();
        Ok(json!({
            "rates": r,
            "ranking": {"month": ranking.month, "previous_month": previous.map(|p| p.month), "kinds": kinds},
        }))
    })
    .await
}

/// The month a period lies in (the ranking is monthly).
fn month_of(p: Period) -> Period {
    match p {
        Period::Month(_) => p,
        Period::Day(d) | Period::Week(d) => {
            let (y, m, _) = gridcase_projections::period::civil_from_days(d);
            Period::month(y, m)
        }
    }
}

/// Escalation chains.
#[utoipa::path(
    get, path = "/api/v1/dashboard/chains", tag = "dashboard",
    summary = "The chain report (as `gridcase chains --json`) narrowed to the caller's scope",
    params(AsOfQuery),
    responses(
        (status = 200, description = "The chains", body = Object),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn chains(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &principal, "chains", String::new(), q.as_of.as_deref(), |set, _, scope| {
        scoped_chains(set, scope)
    })
    .await
}

/// The chain report narrowed to `scope` (dashboard and native API).
pub(crate) fn scoped_chains(set: &ProjectionSet, scope: &Scope) -> Result<Value, ApiError> {
    let reg = set.registry();
    let mut r = set.chain_report();
    r.communities.retain(|row| scope.may_read_unit(reg, &row.code));
    r.streets.retain(|row| scope.may_read_unit(reg, &row.code));
    if *scope != Scope::All {
        // District-wide figures: they count every unit's cases.
        r.categories.clear();
        r.shapes.clear();
        r.levels.clear();
    }
    to_value(&r)
}

/// Overdue and near-due cases by holder.
#[utoipa::path(
    get, path = "/api/v1/dashboard/overdue", tag = "dashboard",
    summary = "Open cases past or near their limit by holder (as `gridcase overdue --json`), only the cases the caller may read",
    params(AsOfQuery),
    responses(
        (status = 200, description = "The overdue report", body = Object),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn overdue(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &principal, "overdue", String::new(), q.as_of.as_deref(), |set, at, scope| {
        scoped_overdue(set, at, scope)
    })
    .await
}

/// The overdue report narrowed to `scope` (dashboard and native API).
pub(crate) fn scoped_overdue(
    set: &ProjectionSet,
    at: Timestamp,
    scope: &Scope,
) -> Result<Value, ApiError> {
    let reg = set.registry();
    let mut r = set.overdue_report(at);
    if *scope == Scope::All {
        return to_value(&r);
    }
    // A holder outside the scope keeps only the cases the caller may
    // read (a community sees its escalated cases at the street), and
    // its counts then describe only those.
    let mut holders = Vec::new();
    for mut h in std::mem::take(&mut r.holders) {
        if !scope.may_read_unit(reg, &h.unit) {
            h.cases.retain(|c| {
                let holder = h.unit.as_str();
                scope.may_read_case(reg, &c.grid, std::iter::once(holder), "")
            });
            h.overdue = h
                .cases
                .iter()
                .filter(|c| c.state == gridcase_projections::overdue::SlaState::Overdue)
                .count() as u64;
            h.near_due = h.cases.len() as u64 - h.overdue;
            h.open = h.cases.len() as u64;
            h.unclaimed_past_due = 0;
        }
        if !h.cases.is_empty() || scope.may_read_unit(reg, &h.unit) {
            holders.push(h);
        }
    }
    r.overdue = holders.iter().map(|h| h.overdue).sum();
    r.near_due = holders.iter().map(|h| h.near_due).sum();
    r.holders = holders;
    to_value(&r)
}

/// One case: its state, timeline and chain, as of a moment.
#[utoipa::path(
    get, path = "/api/v1/dashboard/cases/{id}", tag = "dashboard",
    summary = "A case page: state (contact only for those allowed), timeline and escalation chain",
    params(("id" = String, Path, description = "Case id"), AsOfQuery),
    responses(
        (status = 200, description = "The case", body = Object),
        (status = 400, description = "Bad id or time", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such case, or not one the caller may read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn case(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<AsOfQuery>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let at = parse_as_of(&state, q.as_of.as_deref())?;
    // One answer for "no such case" and "not yours": a caller outside the
    // scope learns nothing, not even that the case exists.
    let not_found = || ApiError::NotFound(format!("no case {id} that you may read"));
    let mut history = match state.engine.history(&id).await {
        Ok(h) => h,
        Err(gridcase_engine::Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = at {
        history.retain(|(_, rec)| rec.recorded_at <= t);
    }
    let case = gridcase_engine::domain::Case::fold(
        history.iter().map(|(e, r)| (e, r.actor.as_str(), r.recorded_at)),
    )
    .ok_or_else(not_found)?;
    let reg = state.engine.registry();
    let scope = Scope::of(&principal);
    if !scope.may_read_case(
        &reg,
        &case.grid,
        case.holders.iter().map(|h| h.unit.as_str()),
        &case.submitted_by,
    ) {
        return Err(not_found());
    }
    let zone = &reg.zone;
    let personal = scope.may_read_personal_of(&case);
    let timeline: Vec<Value> = gridcase_projections::timeline::timeline(&history, &reg)
        .into_iter()
        .map(|e| {
            // Residents' ids as everywhere: the pseudonym unless personal.
            let actor = state.pseudonyms.shown(&e.actor, personal);
            let who =
                if actor == e.actor { e.who } else { actor.replacen("resident:", "resident ", 1) };
            json!({
                "position": e.position, "at": e.at.0, "at_text": zone.format(e.at),
                "who": who, "actor": actor, "event_type": e.event_type, "what": e.what, "why": e.why,
            })
        })
        .collect();
    let chain = gridcase_projections::chains::chain_of(&history);
    let view = CaseView::new(&case, &reg, &principal, &state.pseudonyms);
    state.record_read(&principal, &case, &view.personal_fields(), "dashboard").await?;
    let v = json!({
        "live": at.is_none(),
        "as_of": at.map(|t| t.0),
        "case": view,
        "holders": case.holders.iter().map(|h| json!({"unit": h.unit, "name": reg.name_of(&h.unit), "since": h.since.0, "since_text": zone.format(h.since), "lead": h.lead, "claimed": h.claimed, "resolved": h.resolved})).collect::<Vec<_>>(),
        "deadlines": {
            "response_due": case.response_due.0, "response_due_text": zone.format(case.response_due),
            "resolution_due": case.resolution_due.0, "resolution_due_text": zone.format(case.resolution_due),
        },
        "timeline": timeline,
        "chain": chain,
    });
    Ok(json_response(Arc::new(v)))
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.options.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_view(p: &Principal, state: &AppState, csrf: String) -> SessionView {
    let reg = state.engine.registry();
    SessionView {
        actor: p.actor.clone(),
        name: reg.staff.get(&p.actor).map(|s| s.name.clone()).unwrap_or_else(|| p.actor.clone()),
        role: p.role.as_str().to_string(),
        unit: p.unit.clone(),
        csrf,
        expires_in_seconds: session::SESSION_TTL.as_secs(),
    }
}

/// Signs in: exchanges an API key for a session cookie.
#[utoipa::path(
    post, path = "/api/v1/dashboard/session", tag = "dashboard",
    summary = "Sign in with an API key: sets an HttpOnly, SameSite=Strict session cookie and returns the CSRF token",
    request_body = SignInBody,
    responses(
        (status = 200, description = "Signed in", body = SessionView, headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "Unknown key", body = ErrorBody),
        (status = 403, description = "The key's actor cannot act", body = ErrorBody),
        (status = 422, description = "No key in the body", body = ErrorBody),
    ),
)]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Response, ApiError> {
    let entry = state.keys.lookup(body.key.trim()).ok_or_else(|| {
        ApiError::Unauthenticated("the API key is not known to this server".into())
    })?;
    let hash = entry.hash.clone();
    let principal = principal_of(&state, entry)?;
    let (token, session) = state.sessions.open(hash);
    let cookie = HeaderValue::from_str(&session::set_cookie(&token, secure(&state, &headers)))
        .map_err(|e| ApiError::Internal(format!("cannot build the cookie: {e}")))?;
    let mut res = Json(session_view(&principal, &state, session.csrf)).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The current session (a reloaded page asks for its CSRF token again).
#[utoipa::path(
    get, path = "/api/v1/dashboard/session", tag = "dashboard",
    summary = "Who is signed in, and the session's CSRF token",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "No session", body = ErrorBody),
    ),
)]
pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let none = || ApiError::Unauthenticated("not signed in".into());
    let token = session::cookie_token(&headers).ok_or_else(none)?;
    let s = state.sessions.get(&token).ok_or_else(none)?;
    let entry = state.keys.lookup_hash(&s.key_hash).ok_or_else(none)?;
    let principal = principal_of(&state, entry)?;
    let mut res = Json(session_view(&principal, &state, s.csrf)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Signs out (needs the CSRF token, like every cookie-authenticated change).
#[utoipa::path(
    post, path = "/api/v1/dashboard/session/end", tag = "dashboard",
    summary = "Sign out: ends the session and clears the cookie",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ),
)]
pub async fn sign_out(
    State(state): State<AppState>,
    _principal: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session::cookie_token(&headers) {
        state.sessions.close(&token);
    }
    let cookie = HeaderValue::from_str(&session::clear_cookie(secure(&state, &headers)))
        .map_err(|e| ApiError::Internal(format!("cannot build the cookie: {e}")))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// One embedded file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page's files, embedded at build time (no CDN, no internet).
const ASSETS: &[Asset] = &[
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "messages.json",
        content_type: "application/json",
        body: include_bytes!("../assets/messages.json"),
    },
    Asset {
        path: "vendor/echarts/echarts.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/vendor/echarts/echarts.min.js"),
    },
    Asset {
        path: "vendor/echarts/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/vendor/echarts/LICENSE"),
    },
    Asset {
        path: "vendor/echarts/LICENSE-d3",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/vendor/echarts/LICENSE-d3"),
    },
    Asset {
        path: "vendor/echarts/NOTICE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/vendor/echarts/NOTICE"),
    },
];

/// The page's files and their sizes (for the size budget test and BENCHMARKS).
pub fn asset_sizes() -> Vec<(&'static str, usize)> {
    let mut v: Vec<_> = ASSETS.iter().map(|a| (a.path, a.body.len())).collect();
    v.push(("index.html", INDEX.len()));
    v
}

const INDEX: &str = include_str!("../assets/index.html");

/// The security headers of the page: nothing but this origin may be
/// loaded or framed (every asset is embedded).
fn page_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// The dashboard page.
#[utoipa::path(
    get, path = "/", tag = "dashboard",
    summary = "The dashboard page (HTML; sign in with an API key)",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)),
)]
pub async fn index() -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        INDEX,
    )
        .into_response();
    page_headers(&mut res);
    res
}

/// One of the page's files.
#[utoipa::path(
    get, path = "/assets/{*path}", tag = "dashboard",
    summary = "The page's embedded scripts, styles, messages and the vendored charting library with its licence",
    params(("path" = String, Path, description = "e.g. app.js, vendor/echarts/echarts.min.js")),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
)]
pub async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let a = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {path:?}")))?;
    // The page's own files change with the binary; the page revalidates them
    // (no-cache, cheap on loopback), while the pinned library may be kept a day.
    let cache = if path.starts_with("vendor/") { "public, max-age=86400" } else { "no-cache" };
    let mut res = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        a.body,
    )
        .into_response();
    page_headers(&mut res);
    Ok(res)
}
