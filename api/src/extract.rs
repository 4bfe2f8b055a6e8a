//! Strict extractors: JSON bodies, query strings and the command headers.
//!
//! axum's own `Json` and `Query` reject bad input with plain-text bodies;
//! these return [`ApiError`]s instead, so a client always gets the
//! machine-readable error format, and they tell a syntax error (400) from
//! content that parses but cannot be used (422: unknown field, wrong type,
//! unknown enum value).
//!
//! **Query strings, one rule for every route** (native, Open311, events):
//! a parameter the route does not know is ignored; a known parameter that
//! is repeated or does not parse is a 400. Open311 allows extensions and
//! published clients add their own parameters (`requests.json?foo=bar`),
//! and refusing them broke those clients; JSON bodies, which only our own
//! clients write, stay strict.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use gridcase_engine::domain::CaseId;
use serde::de::DeserializeOwned;

use crate::state::AppState;
use crate::ApiError;

/// Reads the whole body, at most `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| {
        // The limit is the only error a complete, well-framed body can hit;
        // anything else is a broken connection or framing.
        let text = e.to_string();
        if text.contains("length limit") {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request("unreadable_body", format!("the body could not be read: {text}"))
        }
    })
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Parses JSON text into `T`, classifying serde's error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // An empty body counts as `{}`, so that commands without arguments
    // (claim) can be posted without one.
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable("invalid_body", e.to_string()),
        _ => ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")),
    })
}

/// A JSON body with `deny_unknown_fields` semantics left to `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let ct = content_type(req.headers());
        let bytes = read_body(req, state.options.body_limit).await?;
        match ct.as_deref() {
            Some("application/json") => {}
            Some(t) if t.starts_with("application/") && t.ends_with("+json") => {}
            None if bytes.is_empty() => {}
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "send the body as application/json (got {})",
                    other.unwrap_or("no Content-Type")
                )))
            }
        }
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A query string parsed into `T`. `T` must **not** deny unknown fields:
/// unknown parameters are ignored on every route (see the module docs).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
    }
}

/// A header's value as text, if present; non-ASCII is a 400.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ApiError::bad_request("invalid_header", format!("header {name} is not ASCII"))
        }),
    }
}

/// A client-chosen token (idempotency key, correlation id): 1 to `max`
/// visible ASCII characters.
pub fn token(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(v) = header_text(headers, name)? else { return Ok(None) };
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("header {name} must be 1 to {max} visible ASCII characters"),
        ));
    }
    Ok(Some(v.to_string()))
}

/// `If-Match: "<version>"` (also `W/"n"` and a bare number); `*` is no condition.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = header_text(headers, "if-match")? else { return Ok(None) };
    if v == "*" {
        return Ok(None);
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(v);
    v.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid_if_match",
            "If-Match must be the case's ETag, a quoted version such as \"3\"",
        )
    })
}

/// Checks a case id from a path: letters, digits, `-` and `_`, 1 to 64.
pub fn case_id(id: &str) -> Result<CaseId, ApiError> {
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request(
            "invalid_case_id",
            format!("{id:?} is not a case id (letters, digits, - and _; e.g. GC0000001)"),
        ));
    }
    CaseId::new(id).map_err(|e| ApiError::bad_request("invalid_case_id", e.to_string()))
}
