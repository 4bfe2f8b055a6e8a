//! The CLI's one error type; `main` prints it as one line and exits non-zero.

/// What can stop a `gridcase` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the engine: rejected commands, conflicts, corruption, storage.
    #[error("{0}")]
    Engine(#[from] gridcase_engine::Error),
    /// A file or directory problem.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Input the command cannot use.
    #[error("{0}")]
    Usage(String),
    /// A JSON document or line that does not parse.
    #[error("{0}")]
    Json(String),
}

/// A log error reads as the engine's error of the same name.
impl From<gridcase_engine::log::LogError> for CliError {
    fn from(e: gridcase_engine::log::LogError) -> CliError {
        CliError::Engine(e.into())
    }
}

impl CliError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }

    /// The process exit code: 2 for a rejected or invalid request, 3 for
    /// corruption, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Engine(gridcase_engine::Error::Corruption { .. }) => 3,
            CliError::Engine(e) if e.is_client_error() => 2,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}
