//! Open311 GeoReport v2 under `/open311/v2`, in JSON and XML.
//!
//! The mapping (field names are the spec's):
//! - a gridcase **category** is a service: `service_code` is the category
//!   code, `group` the responsible department's name, `type` is `realtime`
//!   (ids are returned synchronously), `metadata` is `true` exactly when the
//!   service has attributes (every service takes the optional `kind` and
//!   `priority`, listed by `GET services/{code}`);
//! - a **case** is a service request: `status` is `open` while it is being
//!   worked on and `closed` once resolved, closed, rejected, merged or
//!   withdrawn, with `status_notes` saying which; `agency_responsible` names
//!   the current holders, `expected_datetime` is the resolution deadline,
//!   `address` the location as given, `address_id` the grid or
//!   micro-grid code, `lat`/`long` the reported point and `media_url` the
//!   uploaded photo.
//! - **Locations**: each of the spec's options works alone: `address_id` (a
//!   grid or micro-grid code), `address_string` (text containing a
//!   registered address), or `lat`+`long` (placed in a micro-grid by the
//!   engine from the organisation's boundaries; a point outside them, or
//!   with no boundaries loaded, is refused alone with a 400 that says so).
//!   A code decides over the point, the point over an address; the point
//!   is kept and returned whichever placed the case.
//! - **Posted details** are kept in the submission's events: `lat`/`long`,
//!   `device_id`, `account_id`, `email`, `first_name`/`last_name` (the
//!   reporter, personal data) and `phone` (with the name, the contact staff
//!   call back). The spec returns none of the personal ones from `GET
//!   requests`, so Open311 never shows them; `account_id` is echoed in the
//!   POST answer.
//! - **Media**: a multipart POST may carry a `media` file (JPEG, PNG, WebP
//!   or HEIC, decided from its bytes; at most `--media-max-kib`, 5 MiB by
//!   default). It is stored under its SHA-256 outside the log
//!   ([`crate::media`]), the event references it by hash, and it is served
//!   at `GET media/{sha256}`, which is the request's `media_url`. A posted
//!   `media_url` (a link elsewhere) is kept as a link and returned as the
//!   request's `media_url`; it is never fetched.
//! - **Limits** ([`crate::limits`]): requests per address and per key, new
//!   requests per key (default 20 a minute, burst 10); the listing costs by
//!   the page it asks for (a page of 1000 = 11 requests), `extensions=true`
//!   pages hold at most 100 requests, and a bounded number of listings are
//!   built at once. Over a limit: `429` with `Retry-After`.
//! - **Datetimes** are w3 / RFC 3339 in the district's zone, whole
//!   seconds, no fraction (`2026-03-03T16:00:00+08:00`), on every resource
//!   (the organisation's [`Zone`], `Zone::format`; some clients' ISO parsers
//!   reject short fractions such as `.32Z`); `start_date`/`end_date` take
//!   any offset, and a time without one is the district's; discovery's `changeset` is the time the organisation
//!   (services, departments) last changed.
//! - `jurisdiction_id` is optional (one jurisdiction per server); when
//!   given it must be the district's code (or the configured id), else 404.
//! - **Unknown parameters are ignored**, in query strings (every route, see
//!   [`crate::extract`]) and in POST forms: the spec allows extensions and
//!   published clients add their own. A known field given twice is a 400.
//! - `POST requests` needs an `api_key`, in the form, in the query string
//!   (as several published clients send it) or as `Authorization: Bearer`;
//!   its actor submits through the engine like any other caller.
//! - **Tokens**: every accepted POST answers with a `token` (32 hex digits,
//!   128 bits) besides the id; `GET tokens/{token}` needs only the
//!   (optional) `jurisdiction_id`. Without an `Idempotency-Key` header the
//!   token is random; with one it is derived from it, the api_key and the
//!   actor, so a retry returns the same id and token. The token is the
//!   submission's idempotency key in the log, so the lookup reads no state
//!   of its own and survives restarts.
//! - `extensions=true` adds `extended_attributes` (gridcase's own status,
//!   level, holders...) and `notes` (the case history, what happened and
//!   when, without the free-text reasons).
//! - The listing is public, so it carries nothing personal and no staff
//!   text: `status_notes` is a fixed text per status, notes have no
//!   description, and no contact field is ever returned (GeoReport's
//!   contact fields are for POST only).
//!
//! XML is generated from the JSON form by the spec's convention (an array
//! field becomes a wrapper element of singular items), so both formats
//! always carry the same fields.

use std::collections::BTreeMap;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gridcase_engine::domain::{
    CaseId, Command, Contact, MediaRef, Priority, Reporter, RequestKind, Status, Submission,
};
use gridcase_engine::geo::GeoPoint;
use gridcase_engine::org::{Registry, Role};
use gridcase_engine::time::{Timestamp, Zone, DAY_MS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{authenticate, Principal};
use crate::error::ErrorInfo;
use crate::extract::{read_body, QueryParams};
use crate::state::AppState;
use crate::ApiError;
use gridcase_projections::cases::{ListedCase, MediaLink};

/// The spec's largest page and default window.
const MAX_RESULTS: usize = 1000;
/// The largest (and default) page with `extensions=true`: each request's
/// history is read from the log for its notes, about ten times the work of
/// a plain row.
const MAX_EXTENDED_RESULTS: usize = 100;
const WINDOW_MS: i64 = 90 * DAY_MS;
const SPEC_URL: &str = "http://wiki.open311.org/GeoReport_v2";

/// Response format, from the resource's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.json`: `application/json`.
    Json,
    /// `.xml`: `text/xml`.
    Xml,
}

/// Splits `name.json` / `name.xml`.
fn split_format(file: &str) -> Result<(&str, Format), ApiError> {
    let (name, ext) = file.rsplit_once('.').ok_or_else(|| {
        ApiError::NotFound(format!("{file:?}: add the format, e.g. {file}.json or {file}.xml"))
    })?;
    let format = match ext {
        "json" => Format::Json,
        "xml" => Format::Xml,
        _ => {
            return Err(ApiError::NotFound(format!(
                "format {ext:?} is not served; use .json or .xml"
            )))
        }
    };
    if name.is_empty() {
        return Err(ApiError::NotFound("an empty id".into()));
    }
    Ok((name, format))
}

/// The singular element name of an array field's items.
fn item_name(field: &str) -> &str {
    match field {
        "services" => "service",
        "service_requests" => "request",
        "attributes" => "attribute",
        "values" => "value",
        "notes" => "note",
        "formats" => "format",
        "endpoints" => "endpoint",
        "errors" => "error",
        "holders" => "holder",
        "departments" => "department",
        other => other.strip_suffix('s').unwrap_or(other),
    }
}

fn xml_value(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Value::Array(items) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            let item = item_name(name);
            for i in items {
                xml_value(out, item, i);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::Object(map) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (k, v) in map {
                xml_value(out, k, v);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::String(s) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            out.push_str(&quick_xml::escape::escape(s.as_str()));
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::Bool(_) | Value::Number(_) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            out.push_str(&v.to_string());
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

/// The XML document of a JSON value: `root` is the document element; a
/// top-level array's items are named in the singular (`services` → `service`).
pub fn to_xml(root: &str, v: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml_value(&mut out, root, v);
    out
}

fn reply<T: Serialize>(
    format: Format,
    status: StatusCode,
    root: &str,
    body: &T,
) -> Result<Response, ApiError> {
    let encode = |e: serde_json::Error| ApiError::Internal(format!("cannot encode: {e}"));
    Ok(match format {
        // JSON straight from the structs (fields in the spec's order); XML
        // through a JSON value, so that both formats carry the same fields.
        Format::Json => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"))],
            serde_json::to_vec(body).map_err(encode)?,
        )
            .into_response(),
        Format::Xml => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"))],
            to_xml(root, &serde_json::to_value(body).map_err(encode)?),
        )
            .into_response(),
    })
}

/// One Open311 error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Open311Error {
    /// The HTTP status.
    pub code: u16,
    /// What went wrong.
    pub description: String,
}

/// Renders an error the Open311 way: 403 for key problems, 404 for what
/// does not exist, 413, 429 and 5xx as they are, and 400 for everything else.
pub fn error_response(info: &ErrorInfo, format: Format) -> Response {
    let status = match info.status.as_u16() {
        401 | 403 => StatusCode::FORBIDDEN,
        404 | 405 | 429 => info.status,
        413 => StatusCode::PAYLOAD_TOO_LARGE,
        s if s >= 500 => info.status,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = vec![Open311Error { code: status.as_u16(), description: info.message.clone() }];
    reply(format, status, "errors", &body).unwrap_or_else(|_| status.into_response())
}

/// The jurisdiction parameter: optional; when given, the district's code.
fn check_jurisdiction(state: &AppState, j: Option<&str>) -> Result<(), ApiError> {
    let Some(j) = j.map(str::trim).filter(|j| !j.is_empty()) else { return Ok(()) };
    let reg = state.engine.registry();
    let district = reg.district().map(|d| d.code.as_str());
    if Some(j) == district || state.options.jurisdiction_id.as_deref() == Some(j) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "jurisdiction_id {j:?} was not found; this server serves {}",
            district.unwrap_or("one district")
        )))
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Query of the resources that take only the jurisdiction.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JurisdictionQuery {
    /// The district's code (optional: one jurisdiction per server).
    pub jurisdiction_id: Option<String>,
    /// Accepted and ignored (reads need no key).
    pub api_key: Option<String>,
}

/// An endpoint in the discovery document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryEndpoint {
    /// The specification's URL.
    pub specification: String,
    /// The endpoint's base URL.
    pub url: String,
    /// When it last changed.
    pub changeset: String,
    /// production.
    #[serde(rename = "type")]
    pub kind: String,
    /// Response formats.
    pub formats: Vec<String>,
}

/// The service discovery document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Discovery {
    /// When it last changed.
    pub changeset: String,
    /// Who runs the service.
    pub contact: String,
    /// How to get an API key.
    pub key_service: String,
    /// The endpoints.
    pub endpoints: Vec<DiscoveryEndpoint>,
}

async fn discovery(
    state: AppState,
    headers: HeaderMap,
    q: JurisdictionQuery,
    format: Format,
) -> Result<Response, ApiError> {
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let url = base_url(&headers);
    let reg = state.engine.registry();
    let district = reg.district().map(|d| format!("{} ({})", d.name, d.code)).unwrap_or_default();
    let changeset = reg.zone.format(registry_changed_at(&state, reg.version).await?);
    let body = Discovery {
        changeset: changeset.clone(),
        contact: format!("{district}: the district's grid-governance platform (gridcase)"),
        key_service: "API keys are issued by the district's operators (`gridcase apikey create`)"
            .into(),
        endpoints: vec![DiscoveryEndpoint {
            specification: SPEC_URL.into(),
            url,
            changeset,
            kind: "production".into(),
            formats: vec!["text/xml".into(), "application/json".into()],
        }],
    };
    reply(format, StatusCode::OK, "discovery", &body)
}

/// When the organisation (services, departments) last changed: the time of
/// the org stream's last record, which is what discovery's `changeset` is.
async fn registry_changed_at(state: &AppState, version: u64) -> Result<Timestamp, ApiError> {
    let stream = gridcase_engine::log::StreamId::new(gridcase_engine::org::ORG_STREAM)
        .map_err(|e| ApiError::Internal(format!("the org stream: {e}")))?;
    let recs = state.engine.log().read_stream(&stream, version.max(1), 1).await?;
    Ok(recs.first().map(|r| r.recorded_at).unwrap_or_else(|| state.engine.clock().now()))
}

/// This endpoint's base URL as the client reached it (`http://host/open311/v2`,
/// from a sane `Host` header; the bare path without one).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(h) => format!("http://{h}/open311/v2"),
        None => "/open311/v2".into(),
    }
}

macro_rules! two_formats {
    ($json:ident, $xml:ident, $inner:ident, $path_json:tt, $path_xml:tt, $summary:tt, $query:ident, $body:ty) => {
        #[doc = $summary]
        #[utoipa::path(get, path = $path_json, tag = "open311", summary = $summary, params($query),
            responses((status = 200, description = "JSON", body = $body), (status = 400, description = "Bad parameter", body = Vec<Open311Error>), (status = 404, description = "Unknown jurisdiction or code", body = Vec<Open311Error>)))]
        pub async fn $json(State(state): State<AppState>, headers: HeaderMap, QueryParams(q): QueryParams<$query>) -> Result<Response, ApiError> {
            $inner(state, headers, q, Format::Json).await
        }
        #[doc = $summary]
        #[utoipa::path(get, path = $path_xml, tag = "open311", summary = $summary, params($query),
            responses((status = 200, description = "XML", content_type = "text/xml", body = String), (status = 400, description = "Bad parameter", content_type = "text/xml", body = String), (status = 404, description = "Unknown jurisdiction or code", content_type = "text/xml", body = String)))]
        pub async fn $xml(State(state): State<AppState>, headers: HeaderMap, QueryParams(q): QueryParams<$query>) -> Result<Response, ApiError> {
            $inner(state, headers, q, Format::Xml).await
        }
    };
}

two_formats!(
    discovery_json,
    discovery_xml,
    discovery,
    "/open311/v2/discovery.json",
    "/open311/v2/discovery.xml",
    "Service discovery",
    JurisdictionQuery,
    Discovery
);

/// One service (a gridcase category).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Open311Service {
    /// The category code.
    pub service_code: String,
    /// The category name.
    pub service_name: String,
    /// What it covers and who handles it.
    pub description: String,
    /// Whether the service has attributes (GET services/{code} lists them):
    /// true for every gridcase service, which all take `kind` and `priority`.
    pub metadata: bool,
    /// Always realtime: ids are returned synchronously.
    #[serde(rename = "type")]
    pub kind: String,
    /// Comma-separated keywords.
    pub keywords: String,
    /// The responsible department's name.
    pub group: String,
}

fn service_of(reg: &Registry, code: &str) -> Option<Open311Service> {
    let c = reg.categories.get(code)?;
    let dept = reg.name_of(&c.department).to_string();
    let class = serde_json::to_value(c.class)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Some(Open311Service {
        service_code: c.code.clone(),
        service_name: c.name.clone(),
        description: format!("{}: handled by {} ({class} time limits)", c.name, dept),
        metadata: !attributes().is_empty(),
        kind: "realtime".into(),
        keywords: format!("{}, {}, {}, {class}", c.code, c.name, dept),
        group: dept,
    })
}

async fn services(
    state: AppState,
    _h: HeaderMap,
    q: JurisdictionQuery,
    format: Format,
) -> Result<Response, ApiError> {
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let reg = state.engine.registry();
    let list: Vec<Open311Service> =
        reg.categories.keys().filter_map(|c| service_of(&reg, c)).collect();
    reply(format, StatusCode::OK, "services", &list)
}

two_formats!(
    services_json,
    services_xml,
    services,
    "/open311/v2/services.json",
    "/open311/v2/services.xml",
    "The service list (gridcase categories)",
    JurisdictionQuery,
    Vec<Open311Service>
);

/// An option of a list attribute.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AttributeValue {
    /// The value to send.
    pub key: String,
    /// Its name.
    pub name: String,
}

/// An attribute of a service definition.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Attribute {
    /// Needs user input.
    pub variable: bool,
    /// The code (send as `attribute[code]`).
    pub code: String,
    /// singlevaluelist.
    pub datatype: String,
    /// Whether it must be sent.
    pub required: bool,
    /// Help on the datatype.
    pub datatype_description: Option<String>,
    /// Display order.
    pub order: u32,
    /// What it means.
    pub description: String,
    /// The allowed values.
    pub values: Vec<AttributeValue>,
}

/// A service definition.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceDefinition {
    /// The service code.
    pub service_code: String,
    /// The optional attributes.
    pub attributes: Vec<Attribute>,
}

fn list_attribute(code: &str, order: u32, description: &str, values: &[&str]) -> Attribute {
    Attribute {
        variable: true,
        code: code.into(),
        datatype: "singlevaluelist".into(),
        required: false,
        datatype_description: None,
        order,
        description: description.into(),
        values: values
            .iter()
            .map(|v| AttributeValue { key: v.to_string(), name: v.replace('_', " ") })
            .collect(),
    }
}

/// The attributes every service takes (the one list both `metadata` and
/// the service definition are made from).
fn attributes() -> Vec<Attribute> {
    let kinds: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
    let priorities: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
    vec![
        list_attribute("kind", 1, "Kind of request (default help)", &kinds),
        list_attribute("priority", 2, "Urgency (default normal)", &priorities),
    ]
}

/// A service's definition.
#[utoipa::path(
    get, path = "/open311/v2/services/{service_code}", tag = "open311",
    summary = "A service definition; the path segment is `<service_code>.json` or `<service_code>.xml`",
    params(("service_code" = String, Path, description = "The service code followed by .json or .xml, e.g. street_light.json"), JurisdictionQuery),
    responses(
        (status = 200, description = "The definition (XML for .xml)", body = ServiceDefinition),
        (status = 404, description = "Unknown service code or jurisdiction", body = Vec<Open311Error>),
    )
)]
pub async fn service_definition(
    State(state): State<AppState>,
    Path(file): Path<String>,
    QueryParams(q): QueryParams<JurisdictionQuery>,
) -> Result<Response, ApiError> {
    let (code, format) = split_format(&file)?;
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let reg = state.engine.registry();
    if !reg.categories.contains_key(code) {
        return Err(ApiError::NotFound(format!("service_code {code:?} was not found")));
    }
    let body = ServiceDefinition { service_code: code.to_string(), attributes: attributes() };
    reply(format, StatusCode::OK, "service_definition", &body)
}

/// gridcase's own view of a request (with `extensions=true`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ExtendedAttributes {
    /// gridcase status (submitted, assigned, escalated, dispatched, resolved, closed, rejected, merged, withdrawn).
    pub gridcase_status: String,
    /// Level holding it.
    pub level: String,
    /// Holding unit codes.
    pub holders: Vec<String>,
    /// Kind.
    pub kind: String,
    /// Priority.
    pub priority: String,
    /// Intake channel.
    pub channel: String,
    /// Grid code.
    pub grid: String,
    /// Community code.
    pub community: String,
    /// Street code.
    pub street: String,
    /// Past its resolution deadline.
    pub overdue: bool,
    /// Reopens.
    pub reopen_count: u32,
    /// Version of the case.
    pub version: u64,
}

/// A note of the request's history (with `extensions=true`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Note {
    /// When.
    pub datetime: String,
    /// What happened.
    pub summary: String,
    /// Why, when the event says.
    pub description: Option<String>,
    /// opened, activity or closed.
    #[serde(rename = "type")]
    pub kind: String,
    /// The gridcase event type.
    pub event_type: String,
}

/// One service request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceRequest {
    /// The case id.
    pub service_request_id: String,
    /// open or closed.
    pub status: String,
    /// Why it has this status.
    pub status_notes: Option<String>,
    /// Category name.
    pub service_name: String,
    /// Category code.
    pub service_code: String,
    /// What the resident said.
    pub description: String,
    /// The current holders' names.
    pub agency_responsible: Option<String>,
    /// What happens next.
    pub service_notice: Option<String>,
    /// Submission time.
    pub requested_datetime: String,
    /// Last change (the closing time for a closed request).
    pub updated_datetime: String,
    /// The resolution deadline.
    pub expected_datetime: Option<String>,
    /// The location as given.
    pub address: String,
    /// The grid or micro-grid code.
    pub address_id: Option<String>,
    /// Not kept (null).
    pub zipcode: Option<String>,
    /// The reported point's latitude (WGS84), null without one.
    pub lat: Option<f64>,
    /// The reported point's longitude (WGS84), null without one.
    pub long: Option<f64>,
    /// The uploaded photo, served by this server (`.../media/{sha256}`), or null.
    pub media_url: Option<String>,
    /// With extensions=true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_attributes: Option<ExtendedAttributes>,
    /// With extensions=true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<Note>>,
}

fn is_closed(s: Status) -> bool {
    s.is_final() || s == Status::Resolved
}

/// The public `status_notes`: a fixed text per status (with the units'
/// names from the registry), never a staff note or anything personal.
fn status_notes(case: &ListedCase<'_>, reg: &Registry) -> String {
    let holders =
        || case.holders().map(|h| reg.name_of(h).to_string()).collect::<Vec<_>>().join(", ");
    // Only the status and the registry's unit names: the holders' notes
    // are staff text (they often quote the resident's phone) and the
    // listing is public.
    match case.status() {
        Status::Submitted => format!("registered with {}", reg.name_of(case.community())),
        Status::Assigned => {
            format!("assigned to a grid worker of {}", reg.name_of(case.community()))
        }
        Status::Escalated => format!("escalated to {}", holders()),
        Status::Dispatched => format!("dispatched to {}", holders()),
        // The listing does not keep whether the callback was made (a
        // resolved case may be called back and wait only for closure), so
        // the note does not claim it is awaited.
        Status::Resolved => format!("resolved by {}", holders()),
        Status::Closed => "closed after the callback".to_string(),
        Status::Rejected => "rejected as invalid".to_string(),
        Status::Merged => {
            format!("duplicate of {}", case.merged_into().unwrap_or("another request"))
        }
        Status::Withdrawn => "withdrawn by the resident".to_string(),
    }
}

/// A listed case as Open311 shows it; with `now`, also its
/// `extended_attributes` (the notes need the history: [`add_notes`]).
fn service_request(
    case: &ListedCase<'_>,
    reg: &Registry,
    zone: &Zone,
    base: &str,
    now: Option<Timestamp>,
) -> ServiceRequest {
    let closed = is_closed(case.status());
    let agency = case.holders().map(|h| reg.name_of(h).to_string()).collect::<Vec<_>>().join(", ");
    ServiceRequest {
        service_request_id: case.id(),
        status: if closed { "closed" } else { "open" }.into(),
        status_notes: Some(status_notes(case, reg)),
        service_name: reg
            .categories
            .get(case.category())
            .map(|c| c.name.clone())
            .unwrap_or_else(|| case.category().to_string()),
        service_code: case.category().to_string(),
        description: case.description().to_string(),
        agency_responsible: (!agency.is_empty()).then_some(agency),
        service_notice: (!closed)
            .then(|| format!("to be resolved by {}", zone.format(case.resolution_due()))),
        requested_datetime: zone.format(case.submitted_at()),
        updated_datetime: zone.format(case.updated_at()),
        expected_datetime: Some(zone.format(case.resolution_due())),
        address: case.location().to_string(),
        address_id: Some(case.micro_grid().unwrap_or(case.grid()).to_string()),
        zipcode: None,
        lat: case.point().map(|p| p.lat()),
        long: case.point().map(|p| p.lon()),
        media_url: case.media().map(|m| match m {
            MediaLink::Stored(sha) => format!("{base}/media/{sha}"),
            MediaLink::Url(url) => url.to_string(),
        }),
        extended_attributes: now.map(|now| ExtendedAttributes {
            gridcase_status: case.status().as_str().into(),
            level: case.level().as_str().into(),
            holders: case.holders().map(str::to_string).collect(),
            kind: case.kind().as_str().into(),
            priority: case.priority().as_str().into(),
            channel: case.channel().as_str().into(),
            grid: case.grid().to_string(),
            community: case.community().to_string(),
            street: case.street().to_string(),
            overdue: case.is_overdue(now),
            reopen_count: case.reopen_count(),
            version: case.version(),
        }),
        notes: None,
    }
}

/// Adds the case history as `notes` (with `extensions=true`; `ended`: the
/// case is closed, rejected, merged or withdrawn). Read from the log after
/// the listing's lock is released.
async fn add_notes(state: &AppState, r: &mut ServiceRequest, ended: bool) -> Result<(), ApiError> {
    let history = state.engine.history(&CaseId::new(r.service_request_id.clone())?).await?;
    let reg = state.engine.registry();
    let zone = &reg.zone;
    let entries = gridcase_projections::timeline::timeline(&history, &reg);
    let last = entries.len().saturating_sub(1);
    r.notes = Some(
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| Note {
                datetime: zone.format(e.at),
                kind: if i == 0 {
                    "opened"
                } else if i == last && ended {
                    "closed"
                } else {
                    "activity"
                }
                .into(),
                // `what` is generated from the event's kind and units; `why`
                // is free text (staff notes, the resident's words) and the
                // listing is public: it is left out.
                summary: e.what,
                description: None,
                event_type: e.event_type,
            })
            .collect(),
    );
    Ok(())
}

/// The `GET requests` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// The district's code (optional).
    pub jurisdiction_id: Option<String>,
    /// Comma-separated ids; overrides every other filter.
    pub service_request_id: Option<String>,
    /// Comma-separated service codes (default: all).
    pub service_code: Option<String>,
    /// Earliest requested_datetime (w3 format); the range may not span more than 90 days.
    pub start_date: Option<String>,
    /// Latest requested_datetime (w3 format).
    pub end_date: Option<String>,
    /// Comma-separated statuses: open, closed (default: both).
    pub status: Option<String>,
    /// Page number from 1 (default 1).
    pub page: Option<String>,
    /// Results per page, 1 to 1000 (default 1000); with extensions=true, 1 to 100 (default 100).
    pub page_size: Option<String>,
    /// true: add extended_attributes and notes (pages of at most 100).
    pub extensions: Option<String>,
    /// Accepted and ignored (reads need no key).
    pub api_key: Option<String>,
}

fn parse_bool(field: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(o) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{field} must be true or false, not {o:?}"),
        )),
    }
}

fn parse_count(
    field: &str,
    v: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match v {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("{field} must be a number from 1 to {max}"),
            )),
        },
    }
}

fn parse_date(zone: &Zone, field: &str, v: &str) -> Result<Timestamp, ApiError> {
    zone.parse(v).map_err(|_| {
        ApiError::bad_request(
            "invalid_time",
            format!("{field} {v:?} is not a w3 datetime, e.g. 2010-01-01T00:00:00Z"),
        )
    })
}

fn list(v: Option<&str>) -> Vec<&str> {
    v.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

/// The rate-limit cost of a request ([`crate::limits`]): one cell, except
/// the listing (`GET requests.json|xml`), which costs one plus a cell per
/// 100 rows it may return, or per 10 rows with `extensions=true` (whose
/// notes read each request's history). A full page of 1000 or an extended
/// page of 100 costs 11. Parsed leniently: a malformed query costs what
/// its parsable part says, and the handler refuses it anyway.
pub fn listing_cost(path: &str, query: Option<&str>) -> u32 {
    if path != "/open311/v2/requests.json" && path != "/open311/v2/requests.xml" {
        return 1;
    }
    let pairs: Vec<(String, String)> =
        query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let extensions = matches!(get("extensions"), Some("true") | Some("1"));
    let max = if extensions { MAX_EXTENDED_RESULTS } else { MAX_RESULTS };
    let mut rows = get("page_size").and_then(|v| v.parse::<usize>().ok()).unwrap_or(max).min(max);
    if let Some(ids) = get("service_request_id").filter(|v| !v.is_empty()) {
        rows = rows.min(ids.split(',').count());
    }
    let per_cell = if extensions { 10 } else { 100 };
    1 + (rows / per_cell) as u32
}

async fn list_requests(
    state: AppState,
    h: HeaderMap,
    q: RequestsQuery,
    format: Format,
) -> Result<Response, ApiError> {
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let reg = state.engine.registry();
    let now = state.engine.clock().now();
    let extensions = parse_bool("extensions", nonempty(&q.extensions))?;
    let page = parse_count("page", nonempty(&q.page), 1, 1_000_000)?;
    let max_page = if extensions { MAX_EXTENDED_RESULTS } else { MAX_RESULTS };
    let page_size = parse_count("page_size", nonempty(&q.page_size), max_page, max_page)?;
    // A bounded number of listings build at once; the others wait here
    // (within the request timeout) instead of taking every core.
    let _turn = state
        .listing_gate
        .acquire()
        .await
        .map_err(|_| ApiError::Busy("the server is shutting down".into()))?;
    let ids = list(nonempty(&q.service_request_id));
    // Extended attributes are built with the rest under the listing's lock;
    // the notes (the history) are read after it.
    let ext_now = extensions.then_some(now);
    let base = base_url(&h);
    let to_request = |c: ListedCase<'_>| {
        (service_request(&c, &reg, &reg.zone, &base, ext_now), c.status().is_final())
    };
    let mut found: Vec<(ServiceRequest, bool)> = if !ids.is_empty() {
        if ids.len() > MAX_RESULTS {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("at most {MAX_RESULTS} service_request_id values"),
            ));
        }
        let page_ids: Vec<&str> =
            ids.iter().copied().skip((page - 1) * page_size).take(page_size).collect();
        let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
        page_ids.iter().filter_map(|id| set.cases().get(id)).map(to_request).collect()
    } else {
        let codes = list(nonempty(&q.service_code));
        for c in &codes {
            if !reg.categories.contains_key(*c) {
                return Err(ApiError::bad_request(
                    "invalid_service_code",
                    format!("service_code {c:?} is not a service of this jurisdiction"),
                ));
            }
        }
        let statuses = list(nonempty(&q.status));
        for s in &statuses {
            if *s != "open" && *s != "closed" {
                return Err(ApiError::bad_request(
                    "invalid_status",
                    format!("status {s:?}: use open, closed or both"),
                ));
            }
        }
        let start =
            nonempty(&q.start_date).map(|s| parse_date(&reg.zone, "start_date", s)).transpose()?;
        let end =
            nonempty(&q.end_date).map(|s| parse_date(&reg.zone, "end_date", s)).transpose()?;
        let (from, to) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s.plus_ms(WINDOW_MS)),
            (None, Some(e)) => (e.plus_ms(-WINDOW_MS), e),
            (None, None) => (now.plus_ms(-WINDOW_MS), now),
        };
        if to < from {
            return Err(ApiError::bad_request("invalid_range", "end_date is before start_date"));
        }
        if to.0 - from.0 > WINDOW_MS {
            return Err(ApiError::bad_request(
                "invalid_range",
                "the range may not span more than 90 days",
            ));
        }
        let want_open = statuses.is_empty() || statuses.contains(&"open");
        let want_closed = statuses.is_empty() || statuses.contains(&"closed");
        let keep = |c: &ListedCase<'_>| {
            let closed = is_closed(c.status());
            (if closed { want_closed } else { want_open })
                && (codes.is_empty() || codes.contains(&c.category()))
        };
        let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
        set.cases()
            .submitted_between(from, to)
            .rev()
            .filter(keep)
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(to_request)
            .collect()
    };
    if extensions {
        for (r, ended) in &mut found {
            add_notes(&state, r, *ended).await?;
        }
    }
    let found: Vec<ServiceRequest> = found.into_iter().map(|(r, _)| r).collect();
    reply(format, StatusCode::OK, "service_requests", &found)
}

two_formats!(
    requests_json,
    requests_xml,
    list_requests,
    "/open311/v2/requests.json",
    "/open311/v2/requests.xml",
    "Service requests (default: the last 90 days, at most 1000)",
    RequestsQuery,
    Vec<ServiceRequest>
);

/// The `GET requests/{id}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// The district's code (optional).
    pub jurisdiction_id: Option<String>,
    /// true: add extended_attributes and notes.
    pub extensions: Option<String>,
    /// Accepted and ignored (reads need no key).
    pub api_key: Option<String>,
}

/// One service request.
#[utoipa::path(
    get, path = "/open311/v2/requests/{service_request_id}", tag = "open311",
    summary = "One service request; the path segment is `<id>.json` or `<id>.xml`",
    params(("service_request_id" = String, Path, description = "The id followed by .json or .xml, e.g. GC0000001.json"), RequestQuery),
    responses(
        (status = 200, description = "A one-element list (XML for .xml)", body = Vec<ServiceRequest>),
        (status = 404, description = "Unknown id or jurisdiction", body = Vec<Open311Error>),
    )
)]
pub async fn request(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    QueryParams(q): QueryParams<RequestQuery>,
) -> Result<Response, ApiError> {
    let (id, format) = split_format(&file)?;
    let base = base_url(&headers);
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let extensions = parse_bool("extensions", nonempty(&q.extensions))?;
    let now = state.engine.clock().now();
    let reg = state.engine.registry();
    let found = {
        let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
        set.cases().get(id).map(|c| {
            let r = service_request(&c, &reg, &reg.zone, &base, extensions.then_some(now));
            (r, c.status().is_final())
        })
    };
    let (mut r, ended) = found
        .ok_or_else(|| ApiError::NotFound(format!("service_request_id {id:?} was not found")))?;
    if extensions {
        add_notes(&state, &mut r, ended).await?;
    }
    reply(format, StatusCode::OK, "service_requests", &vec![r])
}

/// The answer to a POST.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PostedRequest {
    /// The new request's id.
    pub service_request_id: String,
    /// The request's token for `GET tokens/{token}`: 128 random bits, or,
    /// under an `Idempotency-Key`, derived from it and the api_key (so a
    /// retry gets the same one); unguessable either way.
    pub token: String,
    /// What happens next.
    pub service_notice: Option<String>,
    /// The `account_id` the request was posted with (kept with the
    /// reporter's details), or null.
    pub account_id: Option<String>,
}

/// The answer to a token lookup.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenAnswer {
    /// The request's id.
    pub service_request_id: String,
    /// The token asked about.
    pub token: String,
}

/// The form fields of `POST requests` (for the OpenAPI document; the
/// handler parses the form itself to reject unknown and repeated fields).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostRequestForm {
    /// The API key (or `Authorization: Bearer`).
    pub api_key: Option<String>,
    /// The district's code (optional).
    pub jurisdiction_id: Option<String>,
    /// The service (category) code.
    pub service_code: String,
    /// WGS84 latitude (with long): kept, returned, and a location on its own.
    pub lat: Option<f64>,
    /// WGS84 longitude (with lat).
    pub long: Option<f64>,
    /// A registered address (or text containing one).
    pub address_string: Option<String>,
    /// A grid or micro-grid code.
    pub address_id: Option<String>,
    /// Kept with the reporter's details (personal data: never listed).
    pub email: Option<String>,
    /// Kept with the reporter's details.
    pub device_id: Option<String>,
    /// Kept with the reporter's details; echoed in the answer.
    pub account_id: Option<String>,
    /// Contact name (given).
    pub first_name: Option<String>,
    /// Contact name (family).
    pub last_name: Option<String>,
    /// Contact phone.
    pub phone: Option<String>,
    /// What the resident says (default: the service name).
    pub description: Option<String>,
    /// A link to a photo elsewhere: not fetched, appended to the description
    /// (upload the file as `media` to have it kept and served).
    pub media_url: Option<String>,
    /// (multipart/form-data only) A photo: JPEG, PNG, WebP or HEIC, decided
    /// from its bytes, at most the server's media limit (default 5 MiB);
    /// stored by its SHA-256 and served back as the request's `media_url`.
    #[schema(value_type = Option<String>, format = Binary)]
    pub media: Option<Vec<u8>>,
    /// `attribute[kind]`: consultation, help, complaint, report or suggestion (default help).
    #[serde(rename = "attribute[kind]")]
    pub attribute_kind: Option<String>,
    /// `attribute[priority]`: normal, urgent or emergency (default normal).
    #[serde(rename = "attribute[priority]")]
    pub attribute_priority: Option<String>,
}

const FORM_FIELDS: [&str; 17] = [
    "api_key",
    "jurisdiction_id",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
    "attribute[kind]",
    "attribute[priority]",
];

/// The known fields of a form (or query string), each at most once; an
/// unknown field is ignored (clients add their own, the spec allows
/// extensions), a repeated known one is a 400.
fn parse_form(bytes: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|e| {
        ApiError::bad_request("malformed_form", format!("the form does not parse: {e}"))
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !FORM_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::bad_request(
                "repeated_field",
                format!("field {k:?} is given twice"),
            ));
        }
    }
    // Optional arguments: an empty value is the same as none (spec).
    out.retain(|_, v| !v.trim().is_empty());
    Ok(out)
}

/// A multipart POST: its text fields (the form's rules: known fields once,
/// unknown ignored, empty = absent) and the `media` file's bytes, if any.
/// Text fields together may take `body_limit` bytes, the file the media
/// store's limit; more is a 413.
async fn read_multipart(
    state: &AppState,
    req: Request,
) -> Result<(BTreeMap<String, String>, Option<Vec<u8>>), ApiError> {
    use axum::extract::FromRequest;
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(
            "malformed_multipart",
            format!("the multipart body does not parse: {e}"),
        )
    };
    let mut parts = axum::extract::Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::bad_request("malformed_multipart", e.body_text()))?;
    let media_limit = state.media.as_ref().map_or(0, |m| m.max_bytes());
    let mut text_budget = state.options.body_limit;
    let mut form = BTreeMap::new();
    let mut upload: Option<Vec<u8>> = None;
    while let Some(mut field) = parts.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "media" {
            if upload.is_some() {
                return Err(ApiError::bad_request(
                    "repeated_field",
                    "field \"media\" is given twice",
                ));
            }
            if state.media.is_none() {
                return Err(ApiError::bad_request(
                    "media_not_stored",
                    "this server stores no media files; send media_url instead",
                ));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if bytes.len() + chunk.len() > media_limit {
                    return Err(ApiError::PayloadTooLarge { limit: media_limit });
                }
                bytes.extend_from_slice(&chunk);
            }
            upload = Some(bytes);
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if chunk.len() > text_budget {
                return Err(ApiError::PayloadTooLarge { limit: state.options.body_limit });
            }
            text_budget -= chunk.len();
            value.extend_from_slice(&chunk);
        }
        if !FORM_FIELDS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8(value).map_err(|_| {
            ApiError::bad_request(
                "malformed_multipart",
                format!("field {name:?} is not UTF-8 text"),
            )
        })?;
        if form.insert(name.clone(), value).is_some() {
            return Err(ApiError::bad_request(
                "repeated_field",
                format!("field {name:?} is given twice"),
            ));
        }
    }
    form.retain(|_, v: &mut String| !v.trim().is_empty());
    Ok((form, upload.filter(|b| !b.is_empty())))
}

fn parse_coordinate(name: &str, v: Option<&String>, range: f64) -> Result<Option<f64>, ApiError> {
    match v {
        None => Ok(None),
        Some(t) => match t.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() <= range => Ok(Some(x)),
            _ => Err(ApiError::bad_request(
                "invalid_coordinate",
                format!("{name} must be a WGS84 coordinate"),
            )),
        },
    }
}

async fn post_request(
    state: AppState,
    headers: HeaderMap,
    req: Request,
    format: Format,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    // Published clients send api_key (and sometimes jurisdiction_id) in the
    // query string of the POST: the query's known fields count, the form's
    // win where both are given.
    let query = parse_form(req.uri().query().unwrap_or("").as_bytes())?;
    let (mut form, upload) = match ct.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            (parse_form(&read_body(req, state.options.body_limit).await?)?, None)
        }
        Some("multipart/form-data") => read_multipart(&state, req).await?,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the request as application/x-www-form-urlencoded, or as multipart/form-data with a `media` file".into(),
            ))
        }
    };
    for field in ["api_key", "jurisdiction_id"] {
        if let (false, Some(v)) = (form.contains_key(field), query.get(field)) {
            form.insert(field.to_string(), v.clone());
        }
    }
    // The key first: without a valid key nothing else is looked at (403).
    let key = match form.get("api_key") {
        Some(k) => k.clone(),
        None => crate::auth::bearer(&headers)
            .map_err(|_| ApiError::Forbidden("api_key is invalid".into()))?
            .ok_or_else(|| ApiError::Forbidden("api_key is required to create a request".into()))?,
    };
    let principal: Principal = authenticate(&state, &key).map_err(|e| match e {
        ApiError::Unauthenticated(_) => {
            ApiError::Forbidden("api_key is invalid -- cannot create the request".into())
        }
        other => other,
    })?;
    check_jurisdiction(&state, form.get("jurisdiction_id").map(String::as_str))?;
    let reg = state.engine.registry();
    let code = form
        .get("service_code")
        .ok_or_else(|| ApiError::bad_request("missing_service_code", "service_code is required"))?;
    let service = service_of(&reg, code)
        .ok_or_else(|| ApiError::NotFound(format!("service_code {code:?} was not found")))?;
    let lat = parse_coordinate("lat", form.get("lat"), 90.0)?;
    let long = parse_coordinate("long", form.get("long"), 180.0)?;
    let point = match (lat, long) {
        (Some(lat), Some(lon)) => Some(
            GeoPoint::new(lat, lon)
                .map_err(|e| ApiError::bad_request("invalid_coordinate", e.to_string()))?,
        ),
        (None, None) => None,
        _ => return Err(ApiError::bad_request("invalid_coordinate", "send lat and long together")),
    };
    // Every location option of the spec alone: a code, an address, or the
    // point (the engine places it in a micro-grid; a code decides over the
    // point, the point over an address).
    let location = form.get("address_id").or_else(|| form.get("address_string")).cloned();
    if location.is_none() && point.is_none() {
        return Err(ApiError::bad_request(
            "missing_location",
            "send a location: lat and long, address_string (a registered address) or address_id (a grid or micro-grid code)",
        ));
    }
    let kind = match form.get("attribute[kind]") {
        Some(k) => k
            .parse::<RequestKind>()
            .map_err(|e| ApiError::bad_request("invalid_attribute", e.to_string()))?,
        None => RequestKind::Help,
    };
    let priority = match form.get("attribute[priority]") {
        Some(p) => p
            .parse::<Priority>()
            .map_err(|e| ApiError::bad_request("invalid_attribute", e.to_string()))?,
        None => Priority::Normal,
    };
    let description =
        form.get("description").cloned().unwrap_or_else(|| service.service_name.clone());
    // A posted `media_url` is a link to a photo the client keeps elsewhere:
    // stored as a link (the engine checks it is an http(s) URL) and returned
    // as the request's `media_url`; the server does not fetch it (it would
    // request any URL a client names). An uploaded `media` file wins.
    let link = form.get("media_url").map(|u| MediaRef::link(u.trim()));
    let name = [form.get("first_name"), form.get("last_name")]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let contact = match (name.is_empty(), form.get("phone")) {
        (true, None) => None,
        (_, phone) => Some(Contact { name, phone: phone.cloned().unwrap_or_default() }),
    };
    let reporter = Reporter {
        device_id: form.get("device_id").cloned(),
        account_id: form.get("account_id").cloned(),
        email: form.get("email").cloned(),
        first_name: form.get("first_name").cloned(),
        last_name: form.get("last_name").cloned(),
    };
    let channel = match principal.role {
        Role::Resident => gridcase_engine::domain::Channel::App,
        Role::GridWorker => gridcase_engine::domain::Channel::GridPatrol,
        Role::DistrictSupervisor => gridcase_engine::domain::Channel::Hotline,
        _ => gridcase_engine::domain::Channel::Portal,
    };
    // The file is stored only now, once the key and the fields passed. A
    // submission the engine then refuses leaves a file nothing points at:
    // harmless (content-addressed, size-limited, the submission quota
    // bounds how many), and cheaper than a second pass over the body.
    let media = match (&upload, &state.media, link) {
        (Some(bytes), Some(store), _) => vec![store.put(bytes)?],
        (_, _, Some(link)) => vec![link],
        _ => Vec::new(),
    };
    let command = Command::Submit(Submission {
        channel,
        kind,
        category: service.service_code.clone(),
        priority,
        description,
        location: location.unwrap_or_default(),
        contact,
        point,
        media,
        reporter: (!reporter.is_empty()).then_some(reporter),
    });
    let mut opts = crate::command::command_options(&principal, &headers)?;
    let client_key = crate::extract::token(&headers, "idempotency-key", 100)?;
    let token = request_token(&key, &principal.actor, client_key.as_deref())?;
    // The token is the engine's idempotency key of this submission: a
    // retry with the same Idempotency-Key derives the same token and gets
    // the first answer, and `GET tokens/{token}` finds the case through it.
    opts.idempotency_key = Some(token_key(&token));
    let done =
        crate::command::run(&state, &principal, opts, None, command).await.map_err(
            |e| match e {
                // Open311 knows no 422: an argument the rules refuse is a 400.
                ApiError::Engine(gridcase_engine::Error::Rejected(r))
                    if r.rule != gridcase_engine::domain::Rule::NotAuthorised =>
                {
                    ApiError::bad_request("invalid_request", r.to_string())
                }
                other => other,
            },
        )?;
    let case = &done.case;
    let zone = &reg.zone;
    let body = vec![PostedRequest {
        service_request_id: case.id.clone(),
        token,
        account_id: case.reporter.as_ref().and_then(|r| r.account_id.clone()),
        service_notice: Some(format!(
            "registered with {}; first response due by {}, resolution by {}",
            reg.name_of(&case.community),
            zone.format(case.response_due),
            zone.format(case.resolution_due)
        )),
    }];
    let mut res = reply(format, StatusCode::OK, "service_requests", &body)?;
    if done.replayed {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

macro_rules! post_formats {
    ($name:ident, $path:tt, $format:expr, $ok:tt) => {
        /// Creates a service request.
        #[utoipa::path(
            post, path = $path, tag = "open311",
            summary = "Create a service request (form-encoded; needs api_key)",
            description = "Location, any one alone: lat+long (placed by the organisation's micro-grid boundaries), address_string (text containing a registered address) or address_id (a grid or micro-grid code). As multipart/form-data, a `media` file (JPEG, PNG, WebP or HEIC) is stored and served back as the request's media_url. Optional attributes attribute[kind] and attribute[priority]. api_key may also be sent in the query string or as Authorization: Bearer. Unknown fields are ignored. Every answer carries a token for GET tokens/{token}; an Idempotency-Key header makes retries safe (same id, same token).",
            params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original id and token")),
            request_body(content(
                (PostRequestForm = "application/x-www-form-urlencoded"),
                (PostRequestForm = "multipart/form-data"),
            )),
            responses(
                (status = 200, description = $ok, body = Vec<PostedRequest>),
                (status = 400, description = "Missing or invalid field, a body neither form nor multipart, or a media file that is not an accepted image", body = Vec<Open311Error>),
                (status = 403, description = "Missing or invalid api_key, or not allowed to submit", body = Vec<Open311Error>),
                (status = 404, description = "Unknown service_code or jurisdiction_id", body = Vec<Open311Error>),
                (status = 413, description = "Body or media file too large", body = Vec<Open311Error>),
                (status = 429, description = "Over a rate limit or the key's submission quota (Retry-After says when to retry)", body = Vec<Open311Error>),
            )
        )]
        pub async fn $name(State(state): State<AppState>, headers: HeaderMap, req: Request) -> Result<Response, ApiError> {
            post_request(state, headers, req, $format).await
        }
    };
}

post_formats!(post_request_json, "/open311/v2/requests.json", Format::Json, "The new id (JSON)");
post_formats!(post_request_xml, "/open311/v2/requests.xml", Format::Xml, "The new id (XML)");

/// The engine idempotency key a token stands for (one namespace for all
/// callers: the token is unguessable, so it needs no scoping by actor).
fn token_key(token: &str) -> String {
    format!("open311-token:{token}")
}

/// The token of a new request: under a client's `Idempotency-Key`, a keyed
/// hash of it with the api_key and the actor (a retry gets the same token;
/// nobody without the api_key can compute it); otherwise 128 bits from the
/// OS's random source. 32 hex digits either way.
fn request_token(
    api_key: &str,
    actor: &str,
    idempotency_key: Option<&str>,
) -> Result<String, ApiError> {
    let bytes: [u8; 16] = match idempotency_key {
        Some(k) => {
            let mut h = blake3::Hasher::new_derive_key("gridcase open311 request token v1");
            for part in [api_key, actor, k] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            let mut out = [0u8; 16];
            out.copy_from_slice(&h.finalize().as_bytes()[..16]);
            out
        }
        None => {
            let mut out = [0u8; 16];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut out)
                .map_err(|e| ApiError::Internal(format!("the OS random source failed: {e}")))?;
            out
        }
    };
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `GET tokens/{token}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The district's code (optional).
    pub jurisdiction_id: Option<String>,
}

/// The id of the request made with a token.
#[utoipa::path(
    get, path = "/open311/v2/tokens/{token}", tag = "open311",
    summary = "The service_request_id created with a token; the path segment is `<token>.json` or `<token>.xml`",
    description = "The token is the one the POST answered with. Tokens are unguessable (128 bits), so the lookup needs only jurisdiction_id (optional on this server), no api_key.",
    params(("token" = String, Path, description = "The token followed by .json or .xml"), TokenQuery),
    responses(
        (status = 200, description = "A one-element list (XML for .xml)", body = Vec<TokenAnswer>),
        (status = 404, description = "Unknown token or jurisdiction", body = Vec<Open311Error>),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Path(file): Path<String>,
    QueryParams(q): QueryParams<TokenQuery>,
) -> Result<Response, ApiError> {
    let (token, format) = split_format(&file)?;
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let not_found = || ApiError::NotFound(format!("token {token:?} was not found"));
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let (_, outcome) =
        state.engine.log().idempotency_lookup(&token_key(token)).await?.ok_or_else(not_found)?;
    let recs = state.engine.log().read_all(outcome.first_position, 1).await?;
    let rec = recs.first().ok_or_else(not_found)?;
    let id = rec
        .stream
        .strip_prefix(gridcase_engine::engine::CASE_STREAM_PREFIX)
        .ok_or_else(not_found)?
        .to_string();
    reply(
        format,
        StatusCode::OK,
        "service_requests",
        &vec![TokenAnswer { service_request_id: id, token: token.to_string() }],
    )
}

/// A stored media file, by the SHA-256 a request's `media_url` names.
#[utoipa::path(
    get, path = "/open311/v2/media/{sha256}", tag = "open311",
    summary = "An uploaded photo (the file a request's media_url points at)",
    description = "Files are immutable (named by their SHA-256), so they may be cached for ever. The type was decided from the bytes at upload.",
    params(("sha256" = String, Path, description = "64 lower-case hex digits")),
    responses(
        (status = 200, description = "The file", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such file", body = Vec<Open311Error>),
    )
)]
pub async fn media(
    State(state): State<AppState>,
    Path(sha): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("media {sha:?} was not found"));
    let store = state.media.as_ref().ok_or_else(not_found)?;
    let (bytes, content_type) = store.get(&sha)?.ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_listing_costs_by_the_rows_it_may_return() {
        let cost = |q: &str| listing_cost("/open311/v2/requests.json", Some(q));
        assert_eq!(cost(""), 11, "the default page of 1000");
        assert_eq!(cost("page_size=50"), 1);
        assert_eq!(cost("page_size=1000&foo=bar"), 11);
        assert_eq!(cost("page_size=999999"), 11, "a page is never costed above the cap");
        assert_eq!(cost("extensions=true"), 11, "the default extended page of 100");
        assert_eq!(cost("extensions=true&page_size=20"), 3);
        assert_eq!(cost("service_request_id=GC1,GC2"), 1);
        assert_eq!(cost("page_size=%%%"), 11, "what does not parse costs the most");
        assert_eq!(listing_cost("/open311/v2/requests.xml", None), 11);
        assert_eq!(listing_cost("/open311/v2/services.json", Some("page_size=1000")), 1);
        assert_eq!(listing_cost("/api/v1/backlog", None), 1);
    }

    #[test]
    fn tokens_are_derived_under_an_idempotency_key_and_random_without() {
        let a = request_token("gck_k1", "resident:a", Some("retry-1")).unwrap();
        assert_eq!(a, request_token("gck_k1", "resident:a", Some("retry-1")).unwrap());
        assert_ne!(a, request_token("gck_k2", "resident:a", Some("retry-1")).unwrap());
        assert_ne!(a, request_token("gck_k1", "resident:a", Some("retry-2")).unwrap());
        let r1 = request_token("gck_k1", "resident:a", None).unwrap();
        let r2 = request_token("gck_k1", "resident:a", None).unwrap();
        assert_ne!(r1, r2);
        for t in [a, r1] {
            assert_eq!(t.len(), 32);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
