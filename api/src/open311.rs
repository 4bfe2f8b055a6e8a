//! Open311 GeoReport v2 under `/open311/v2`, in JSON and XML.
//!
//! The mapping (field names are the spec's):
//! - a gridcase **category** is a service: `service_code` is the category
//!   code, `group` the responsible department's name, `type` is `realtime`
//!   (ids are returned synchronously), `metadata` is `false` (the two
//!   optional attributes, `kind` and `priority`, have defaults);
//! - a **case** is a service request: `status` is `open` while it is being
//!   worked on and `closed` once resolved, closed, rejected, merged or
//!   withdrawn, with `status_notes` saying which; `agency_responsible` names
//!   the current holders, `expected_datetime` is the resolution deadline,
//!   `address` the location as given and `address_id` the grid or
//!   micro-grid code. gridcase locates by grid, not by coordinates: `lat`
//!   and `long` are accepted on POST but never returned (null / empty).
//! - `jurisdiction_id` is optional (one jurisdiction per server); when
//!   given it must be the district's code (or the configured id), else 404.
//! - `POST requests` needs an `api_key`; its actor submits through the
//!   engine like any other caller. A client that lost a response can look up
//!   the id with `GET tokens/{token}`, where the token is the
//!   `Idempotency-Key` it sent (with the same `api_key`).
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
    CaseId, Command, Contact, Priority, RequestKind, Status, Submission,
};
use gridcase_engine::org::{Registry, Role};
use gridcase_engine::time::{Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{authenticate, Principal};
use crate::error::ErrorInfo;
use crate::extract::{read_body, QueryParams};
use crate::state::AppState;
use crate::ApiError;
use gridcase_projections::cases::ListedCase;

/// The spec's largest page and default window.
const MAX_RESULTS: usize = 1000;
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
/// does not exist, 413 and 5xx as they are, and 400 for everything else.
pub fn error_response(info: &ErrorInfo, format: Format) -> Response {
    let status = match info.status.as_u16() {
        401 | 403 => StatusCode::FORBIDDEN,
        404 | 405 => info.status,
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
#[serde(deny_unknown_fields)]
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
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()));
    let url = match host {
        Some(h) => format!("http://{h}/open311/v2"),
        None => "/open311/v2".into(),
    };
    let reg = state.engine.registry();
    let district = reg.district().map(|d| format!("{} ({})", d.name, d.code)).unwrap_or_default();
    let changeset = format!("registry-v{}", reg.version);
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
    /// Always false: the optional attributes have defaults.
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
        metadata: false,
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
    let kinds: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
    let priorities: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
    let body = ServiceDefinition {
        service_code: code.to_string(),
        attributes: vec![
            list_attribute("kind", 1, "Kind of request (default help)", &kinds),
            list_attribute("priority", 2, "Urgency (default normal)", &priorities),
        ],
    };
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
    /// Not kept: gridcase locates by grid (null).
    pub lat: Option<f64>,
    /// Not kept: gridcase locates by grid (null).
    pub long: Option<f64>,
    /// Not kept (null).
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
        service_notice: (!closed).then(|| format!("to be resolved by {}", case.resolution_due())),
        requested_datetime: case.submitted_at().to_rfc3339(),
        updated_datetime: case.updated_at().to_rfc3339(),
        expected_datetime: Some(case.resolution_due().to_rfc3339()),
        address: case.location().to_string(),
        address_id: Some(case.micro_grid().unwrap_or(case.grid()).to_string()),
        zipcode: None,
        lat: None,
        long: None,
        media_url: None,
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
    let entries = gridcase_projections::timeline::timeline(&history, &reg);
    let last = entries.len().saturating_sub(1);
    r.notes = Some(
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| Note {
                datetime: e.at.to_rfc3339(),
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
#[serde(deny_unknown_fields)]
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
    /// Results per page, 1 to 1000 (default 1000).
    pub page_size: Option<String>,
    /// true: add extended_attributes and notes.
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

fn parse_date(field: &str, v: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(v).map_err(|_| {
        ApiError::bad_request(
            "invalid_time",
            format!("{field} {v:?} is not a w3 datetime, e.g. 2010-01-01T00:00:00Z"),
        )
    })
}

fn list(v: Option<&str>) -> Vec<&str> {
    v.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

async fn list_requests(
    state: AppState,
    _h: HeaderMap,
    q: RequestsQuery,
    format: Format,
) -> Result<Response, ApiError> {
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let reg = state.engine.registry();
    let now = state.engine.clock().now();
    let extensions = parse_bool("extensions", nonempty(&q.extensions))?;
    let page = parse_count("page", nonempty(&q.page), 1, 1_000_000)?;
    let page_size = parse_count("page_size", nonempty(&q.page_size), MAX_RESULTS, MAX_RESULTS)?;
    let ids = list(nonempty(&q.service_request_id));
    // Extended attributes are built with the rest under the listing's lock;
    // the notes (the history) are read after it.
    let ext_now = extensions.then_some(now);
    let to_request =
        |c: ListedCase<'_>| (service_request(&c, &reg, ext_now), c.status().is_final());
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
        let start = nonempty(&q.start_date).map(|s| parse_date("start_date", s)).transpose()?;
        let end = nonempty(&q.end_date).map(|s| parse_date("end_date", s)).transpose()?;
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
#[serde(deny_unknown_fields)]
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
    Path(file): Path<String>,
    QueryParams(q): QueryParams<RequestQuery>,
) -> Result<Response, ApiError> {
    let (id, format) = split_format(&file)?;
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let extensions = parse_bool("extensions", nonempty(&q.extensions))?;
    let now = state.engine.clock().now();
    let reg = state.engine.registry();
    let found = {
        let set = state.projections.read().unwrap_or_else(|p| p.into_inner());
        set.cases()
            .get(id)
            .map(|c| (service_request(&c, &reg, extensions.then_some(now)), c.status().is_final()))
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
    /// What happens next.
    pub service_notice: Option<String>,
    /// Not kept (null).
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
    /// Accepted, not kept; a location also needs address_string or address_id.
    pub lat: Option<f64>,
    /// Accepted, not kept.
    pub long: Option<f64>,
    /// A registered address (or text containing one).
    pub address_string: Option<String>,
    /// A grid or micro-grid code.
    pub address_id: Option<String>,
    /// Accepted, not kept.
    pub email: Option<String>,
    /// Accepted, not kept.
    pub device_id: Option<String>,
    /// Accepted, not kept.
    pub account_id: Option<String>,
    /// Contact name (given).
    pub first_name: Option<String>,
    /// Contact name (family).
    pub last_name: Option<String>,
    /// Contact phone.
    pub phone: Option<String>,
    /// What the resident says (default: the service name).
    pub description: Option<String>,
    /// A link to a photo; appended to the description.
    pub media_url: Option<String>,
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

fn parse_form(bytes: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|e| {
        ApiError::bad_request("malformed_form", format!("the form does not parse: {e}"))
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !FORM_FIELDS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_field",
                format!("unknown field {k:?}; the fields are {}", FORM_FIELDS.join(", ")),
            ));
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
    let bytes = read_body(req, state.options.body_limit).await?;
    if ct.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(
            "send the request as application/x-www-form-urlencoded".into(),
        ));
    }
    let form = parse_form(&bytes)?;
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
    if lat.is_some() != long.is_some() {
        return Err(ApiError::bad_request("invalid_coordinate", "send lat and long together"));
    }
    let location = form.get("address_id").or_else(|| form.get("address_string")).cloned().ok_or_else(|| {
        ApiError::bad_request(
            "missing_location",
            "gridcase locates requests by grid: send address_string (a registered address) or address_id (a grid or micro-grid code); lat/long alone are not enough",
        )
    })?;
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
    let mut description =
        form.get("description").cloned().unwrap_or_else(|| service.service_name.clone());
    if let Some(url) = form.get("media_url") {
        if url.len() > 2048
            || !(url.starts_with("http://") || url.starts_with("https://"))
            || url.chars().any(char::is_whitespace)
        {
            return Err(ApiError::bad_request(
                "invalid_media_url",
                "media_url must be an http(s) URL",
            ));
        }
        // gridcase keeps no media; the link stays with the description.
        description.push_str(&format!("\n[media] {url}"));
    }
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
    let channel = match principal.role {
        Role::Resident => gridcase_engine::domain::Channel::App,
        Role::GridWorker => gridcase_engine::domain::Channel::GridPatrol,
        Role::DistrictSupervisor => gridcase_engine::domain::Channel::Hotline,
        _ => gridcase_engine::domain::Channel::Portal,
    };
    let command = Command::Submit(Submission {
        channel,
        kind,
        category: service.service_code.clone(),
        priority,
        description,
        location,
        contact,
    });
    let opts = crate::command::command_options(&principal, &headers)?;
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
    let body = vec![PostedRequest {
        service_request_id: case.id.clone(),
        service_notice: Some(format!(
            "registered with {}; first response due by {}, resolution by {}",
            reg.name_of(&case.community),
            case.response_due,
            case.resolution_due
        )),
        account_id: None,
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
            description = "Location: address_string (a registered address) or address_id (a grid or micro-grid code). Optional attributes attribute[kind] and attribute[priority]. An Idempotency-Key header makes retries safe and is the token for GET tokens/{token}.",
            params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original id; also the token for GET tokens/{token}")),
            request_body(content = PostRequestForm, content_type = "application/x-www-form-urlencoded"),
            responses(
                (status = 200, description = $ok, body = Vec<PostedRequest>),
                (status = 400, description = "Missing or invalid field", body = Vec<Open311Error>),
                (status = 403, description = "Missing or invalid api_key, or not allowed to submit", body = Vec<Open311Error>),
                (status = 404, description = "Unknown service_code or jurisdiction_id", body = Vec<Open311Error>),
                (status = 413, description = "Body too large", body = Vec<Open311Error>),
            )
        )]
        pub async fn $name(State(state): State<AppState>, headers: HeaderMap, req: Request) -> Result<Response, ApiError> {
            post_request(state, headers, req, $format).await
        }
    };
}

post_formats!(post_request_json, "/open311/v2/requests.json", Format::Json, "The new id (JSON)");
post_formats!(post_request_xml, "/open311/v2/requests.xml", Format::Xml, "The new id (XML)");

/// The `GET tokens/{token}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The district's code (optional).
    pub jurisdiction_id: Option<String>,
    /// The key that made the request (tokens are per key).
    pub api_key: Option<String>,
}

/// The id of the request made with a token.
#[utoipa::path(
    get, path = "/open311/v2/tokens/{token}", tag = "open311",
    summary = "The service_request_id created with a token; the path segment is `<token>.json` or `<token>.xml`",
    description = "The token is the Idempotency-Key sent with the POST. Tokens belong to the key that used them, so this lookup needs the same api_key.",
    params(("token" = String, Path, description = "The token followed by .json or .xml"), TokenQuery),
    responses(
        (status = 200, description = "A one-element list (XML for .xml)", body = Vec<TokenAnswer>),
        (status = 403, description = "Missing or invalid api_key", body = Vec<Open311Error>),
        (status = 404, description = "Unknown token", body = Vec<Open311Error>),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Path(file): Path<String>,
    QueryParams(q): QueryParams<TokenQuery>,
) -> Result<Response, ApiError> {
    let (token, format) = split_format(&file)?;
    check_jurisdiction(&state, q.jurisdiction_id.as_deref())?;
    let key = nonempty(&q.api_key)
        .ok_or_else(|| ApiError::Forbidden("api_key is required to look up a token".into()))?;
    let principal = authenticate(&state, key).map_err(|e| match e {
        ApiError::Unauthenticated(_) => ApiError::Forbidden("api_key is invalid".into()),
        other => other,
    })?;
    let scoped = crate::command::scoped_key(&principal.actor, token);
    let not_found = || ApiError::NotFound(format!("token {token:?} was not found"));
    let (_, outcome) =
        state.engine.log().idempotency_lookup(&scoped).await?.ok_or_else(not_found)?;
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
