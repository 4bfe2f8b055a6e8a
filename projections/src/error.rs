//! The crate's one error type.
//!
//! Reading the log can fail the way the engine fails (wrapped as
//! [`Error::Log`]); everything else here is about saved projection state that
//! does not fit the log or this build, and each message says what to do.

use std::path::PathBuf;

use gridcase_engine::log::Position;

/// Everything that can go wrong while building, saving or querying projections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event log failed or is corrupt (the chain check runs on every read).
    #[error("reading the event log failed: {0}")]
    Log(#[from] gridcase_engine::Error),
    /// A stored event payload does not decode.
    #[error("the event at position {position} does not decode ({reason}); if the log was written by a newer gridcase, upgrade; otherwise run `verify` on the store")]
    Decode {
        /// Position of the event.
        position: Position,
        /// What the decoder said.
        reason: String,
    },
    /// A file operation on the state directory failed.
    #[error("cannot {action} {path}: {source}; check that the directory exists and is writable")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The saved state is damaged.
    #[error("the saved projection state {path} is damaged ({reason}); delete it and the projections rebuild from the log")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The saved state was written by a newer build.
    #[error("the saved projection state uses format {found}, this build reads up to {supported}; upgrade gridcase or delete the state to rebuild")]
    NewerFormat {
        /// Format found.
        found: u8,
        /// Newest format this build reads.
        supported: u8,
    },
    /// The saved state was written by an older build, in a layout this
    /// build does not read; [`crate::open`] rebuilds from the log.
    #[error("the saved projection state uses format {found}, this build writes {current}; it is rebuilt from the log")]
    OlderFormat {
        /// Format found.
        found: u8,
        /// Format this build writes.
        current: u8,
    },
    /// The saved state was built with another configuration.
    #[error("the saved projection state was built with {saved}, the configuration asks for {wanted}; rebuild the projections")]
    ConfigMismatch {
        /// The saved configuration.
        saved: String,
        /// The requested configuration.
        wanted: String,
    },
    /// The saved state does not belong to this log.
    #[error("the saved projection state is at position {position}, which {reason}; it was built from another log: rebuild the projections")]
    NotThisLog {
        /// The checkpoint position.
        position: Position,
        /// What does not match.
        reason: String,
    },
    /// A live follower stopped.
    #[error("the projection follower stopped: {0}; restart it (it resumes from the last saved checkpoint)")]
    FollowerStopped(String),
    /// A query argument is malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// A log error is a failure of the log, as the engine reports it.
impl From<gridcase_engine::log::LogError> for Error {
    fn from(e: gridcase_engine::log::LogError) -> Error {
        Error::Log(e.into())
    }
}
