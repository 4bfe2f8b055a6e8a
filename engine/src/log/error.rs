//! The log's own error type: what can go wrong in storage, and nothing of
//! the domain, so that a backend depends on the log's contract only.
//!
//! The engine's [`crate::Error`] wraps it (`From<LogError>`), variant for
//! same-named variant, so callers of the engine see one error type.

use super::ExpectedVersion;

/// Everything that can go wrong in the event log and its backends.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
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
    /// The storage layer (sled, the file system, PostgreSQL) failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Encoding or decoding a record or an index entry failed.
    #[error("codec failure: {0}")]
    Codec(String),
    /// Input that cannot be accepted (bad names, sizes, options, URLs).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A bug or an unexpected state (a writer that stopped, a poisoned lock).
    #[error("internal error: {0}")]
    Internal(String),
}
