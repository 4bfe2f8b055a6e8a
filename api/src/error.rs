//! The crate's one error type, [`ApiError`], and how it becomes an HTTP status.
//!
//! A handler returns an `ApiError`; its [`IntoResponse`] impl does not write
//! the body itself but attaches an [`ErrorInfo`] to the response. The error
//! middleware in [`crate::server`] renders that into the surface's format
//! (the native `{"error": {...}}` object, or Open311's `errors` list in JSON
//! or XML) together with the request's correlation id, which a handler does
//! not know. Responses that axum or tower produce on their own (unknown
//! route, wrong method, body too large, timeout, panic) get the same
//! treatment, so every error a client sees is machine-readable.
//!
//! A stored record that does not verify (its bytes against their check
//! bytes, or its link to the record before), found by any request that
//! reads the log, is a `500` with code `corruption` and the record's
//! `position` in the body (Open311: in the description); the metrics
//! middleware raises the alarm ([`crate::metrics::Metrics::corruption`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridcase_engine::domain::{Rejection, Rule};
use gridcase_engine::log::ExpectedVersion;
use gridcase_engine::Error as EngineError;

/// Everything that can go wrong in the HTTP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// From the engine: rejections, conflicts, missing cases, storage.
    #[error("{0}")]
    Engine(EngineError),
    /// An `If-Match` precondition did not hold. Nothing was written.
    #[error(
        "the case is at version {actual}, the request expected {expected}; reload it and retry"
    )]
    PreconditionFailed {
        /// The version the client sent.
        expected: u64,
        /// The version the case has.
        actual: u64,
    },
    /// From the projections (reports, replay).
    #[error("{0}")]
    Projections(#[from] gridcase_projections::Error),
    /// No or an unknown credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known credential that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A malformed request: syntax, headers, query, path.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code, e.g. `malformed_json`.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A well-formed request whose content cannot be used (unknown field, bad value).
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code, e.g. `invalid_body`.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The body is larger than the server accepts.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not in a format this endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Over a rate limit (429 with `Retry-After`): nothing was done.
    #[error("{message}")]
    TooManyRequests {
        /// Which limit.
        limit: crate::limits::Limit,
        /// Seconds until a retry can pass.
        retry_after: u64,
        /// What to tell the client.
        message: String,
    },
    /// A guarded expensive operation is already running.
    #[error("{0}")]
    Busy(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
    /// The server cannot start or its key file cannot be used.
    #[error("{0}")]
    Setup(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A log error reads as the engine's error of the same name.
impl From<gridcase_engine::log::LogError> for ApiError {
    fn from(e: gridcase_engine::log::LogError) -> ApiError {
        EngineError::from(e).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::Engine(e)
    }
}

/// What the error middleware needs to render an error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: String,
    /// The rule that refused a command, for engine rejections.
    pub rule: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// The case concerned, when there is one.
    pub case_id: Option<String>,
    /// Its state, when there is one.
    pub state: Option<String>,
    /// For corruption: the position of the first record that did not verify.
    pub position: Option<u64>,
}

impl ErrorInfo {
    /// An error known only by its status (what axum and tower produce).
    pub fn from_status(status: StatusCode) -> ErrorInfo {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such resource; see /api/v1/openapi.json"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "this resource does not take that method")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload_too_large", "the request body is larger than the server accepts")
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
                ("timeout", "the request took longer than the server allows; retry later")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "the body is not in a format this endpoint reads")
            }
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid_body", "the body cannot be used"),
            StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; retry later"),
            s if s.is_server_error() => ("internal", "the server failed; quote the correlation id"),
            _ => ("error", "the request failed"),
        };
        ErrorInfo {
            status,
            code: code.into(),
            rule: None,
            message: message.into(),
            case_id: None,
            state: None,
            position: None,
        }
    }

    fn new(status: StatusCode, code: &str, message: String) -> ErrorInfo {
        ErrorInfo {
            status,
            code: code.into(),
            rule: None,
            message,
            case_id: None,
            state: None,
            position: None,
        }
    }

    /// The answer to a record that did not verify at `position`.
    fn corruption(position: u64, message: String) -> ErrorInfo {
        ErrorInfo {
            position: Some(position),
            ..ErrorInfo::new(StatusCode::INTERNAL_SERVER_ERROR, "corruption", message)
        }
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::NotAuthorised => "not_authorised",
        Rule::InvalidTransition => "invalid_transition",
        Rule::InvalidArgument => "invalid_argument",
    }
}

fn rejection_info(r: &Rejection) -> ErrorInfo {
    // Authority is 403, a state that does not allow the command is a
    // conflict with the resource (409), and an argument the rules refuse
    // (unknown worker, department, category, location) is 422.
    let status = match r.rule {
        Rule::NotAuthorised => StatusCode::FORBIDDEN,
        Rule::InvalidTransition => StatusCode::CONFLICT,
        Rule::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ErrorInfo {
        status,
        code: rule_name(r.rule).into(),
        rule: Some(rule_name(r.rule).into()),
        message: r.to_string(),
        case_id: r.case_id.clone(),
        state: r.state.map(|s| s.as_str().to_string()),
        position: None,
    }
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code, message: message.into() }
    }

    /// A 422 with a code.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { code, message: message.into() }
    }

    /// The rendering details of this error.
    pub fn info(&self) -> ErrorInfo {
        use StatusCode as S;
        match self {
            ApiError::Engine(e) => match e {
                EngineError::Rejected(r) => rejection_info(r),
                EngineError::Conflict { expected: ExpectedVersion::Exact(want), actual, .. } => {
                    // The engine reports a mismatch with the caller's expected
                    // version this way; handlers turn it into 412 when the
                    // client sent If-Match (see `native::map_conflict`).
                    ErrorInfo::new(S::CONFLICT, "conflict", format!("the case moved from version {want} to {actual} while the command was being decided; retry"))
                }
                EngineError::Conflict { .. } => {
                    ErrorInfo::new(S::CONFLICT, "conflict", format!("{e}"))
                }
                EngineError::IdempotencyMismatch { key } => ErrorInfo::new(
                    S::CONFLICT,
                    "idempotency_mismatch",
                    format!("the Idempotency-Key {key:?} was already used for a different request; use a new key"),
                ),
                EngineError::NotFound(m) => ErrorInfo::new(S::NOT_FOUND, "not_found", m.clone()),
                EngineError::InvalidInput(m) => {
                    ErrorInfo::new(S::BAD_REQUEST, "invalid_input", m.clone())
                }
                EngineError::Storage(_) => {
                    ErrorInfo::new(S::SERVICE_UNAVAILABLE, "storage_unavailable", e.to_string())
                }
                EngineError::Corruption { position, .. } => {
                    ErrorInfo::corruption(*position, e.to_string())
                }
                // NewerFormat, Codec, Internal, and (the
                // engine's error is non-exhaustive) any variant added later.
                _ => {
                    ErrorInfo::new(S::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                }
            },
            ApiError::PreconditionFailed { .. } => {
                ErrorInfo::new(S::PRECONDITION_FAILED, "precondition_failed", self.to_string())
            }
            ApiError::Projections(e) => match e {
                gridcase_projections::Error::InvalidInput(m) => {
                    ErrorInfo::new(S::BAD_REQUEST, "invalid_query", m.clone())
                }
                gridcase_projections::Error::Log(inner) => ApiError::Engine(inner.clone()).info(),
                gridcase_projections::Error::Decode { position, .. } => {
                    ErrorInfo::corruption(*position, e.to_string())
                }
                _ => ErrorInfo::new(S::INTERNAL_SERVER_ERROR, "projections", e.to_string()),
            },
            ApiError::Unauthenticated(m) => {
                ErrorInfo::new(S::UNAUTHORIZED, "unauthenticated", m.clone())
            }
            ApiError::Forbidden(m) => ErrorInfo {
                rule: Some("not_authorised".into()),
                ..ErrorInfo::new(S::FORBIDDEN, "forbidden", m.clone())
            },
            ApiError::BadRequest { code, message } => {
                ErrorInfo::new(S::BAD_REQUEST, code, message.clone())
            }
            ApiError::Unprocessable { code, message } => {
                ErrorInfo::new(S::UNPROCESSABLE_ENTITY, code, message.clone())
            }
            ApiError::NotFound(m) => ErrorInfo::new(S::NOT_FOUND, "not_found", m.clone()),
            ApiError::PayloadTooLarge { .. } => {
                ErrorInfo::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", self.to_string())
            }
            ApiError::UnsupportedMediaType(m) => {
                ErrorInfo::new(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", m.clone())
            }
            ApiError::Busy(m) => ErrorInfo::new(S::SERVICE_UNAVAILABLE, "busy", m.clone()),
            ApiError::TooManyRequests { message, .. } => {
                ErrorInfo::new(S::TOO_MANY_REQUESTS, "rate_limited", message.clone())
            }
            ApiError::Internal(_) | ApiError::Setup(_) | ApiError::Io { .. } => {
                ErrorInfo::new(S::INTERNAL_SERVER_ERROR, "internal", self.to_string())
            }
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.info().status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = self.info();
        if info.status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = info.status.as_u16(), "request refused");
        }
        let mut res = info.status.into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after).into());
        }
        res.extensions_mut().insert(info);
        res
    }
}
