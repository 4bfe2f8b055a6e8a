//! The engine's one error type.
//!
//! A rejected command ([`Error::Rejected`]) is the caller's doing and expected;
//! a conflict is a retryable race; storage failure and corruption are the
//! store's and propagate. Each message says what went wrong and what to do.

use crate::domain::Rejection;
use crate::log::{ExpectedVersion, LogError};

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Optimistic concurrency: the stream moved since it was read. Nothing was written.
    #[error("conflict on stream {stream}: expected {expected}, it is at version {actual}; reload and retry")]
    Conflict {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The same idempotency key came with a different request. Nothing was written.
    #[error("idempotency key {key:?} was already used for a different request; use a new key")]
    IdempotencyMismatch {
        /// The key.
        key: String,
    },
    /// A record or the chain does not check out at `position`.
    #[error(
        "corruption at position {position}: {reason}; restore this store from a verified export"
    )]
    Corruption {
        /// The first position that failed.
        position: u64,
        /// What failed.
        reason: String,
    },
    /// The store was written by a newer gridcase.
    #[error("the store uses format {found}, this build reads up to {supported}; upgrade gridcase")]
    NewerFormat {
        /// Format found.
        found: u32,
        /// Newest format this build reads.
        supported: u32,
    },
    /// The storage layer failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Encoding or decoding failed.
    #[error("codec failure: {0}")]
    Codec(String),
    /// Input that cannot be accepted (bad names, sizes, times, files).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A command was refused by the domain rules. Nothing was written.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// Something is missing (a case, a unit, a staff member).
    #[error("not found: {0}")]
    NotFound(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True for a rejected command or bad input: the caller's to fix.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Rejected(_)
                | Error::InvalidInput(_)
                | Error::NotFound(_)
                | Error::IdempotencyMismatch { .. }
        )
    }
}

/// Each storage failure becomes the engine variant of the same name, so code
/// that matches `Error::Conflict` or `Error::Corruption` on engine results
/// sees the log's errors as before.
impl From<LogError> for Error {
    fn from(e: LogError) -> Error {
        match e {
            LogError::Conflict { stream, expected, actual } => {
                Error::Conflict { stream, expected, actual }
            }
            LogError::IdempotencyMismatch { key } => Error::IdempotencyMismatch { key },
            LogError::Corruption { position, reason } => Error::Corruption { position, reason },
            LogError::NewerFormat { found, supported } => Error::NewerFormat { found, supported },
            LogError::Storage(m) => Error::Storage(m),
            LogError::Codec(m) => Error::Codec(m),
            LogError::InvalidInput(m) => Error::InvalidInput(m),
            LogError::Internal(m) => Error::Internal(m),
        }
    }
}
