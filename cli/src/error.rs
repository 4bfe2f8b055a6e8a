//! The CLI's one error type; `main` prints it as one line and exits non-zero.
//!
//! Exit codes (every command):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | a failure of the store, a file or the system |
//! | 2 | a request the caller must fix: a rule refused it, bad or unknown input (a malformed time, an unknown unit, case or staff code, `--target` outside (0, 100]), a command time before the log's last record |
//! | 3 | corruption: the log's chain or a record does not check out, from whatever command found it (every command that reads a record checks it first); an export file given to `import` whose hashes, chain or readable fields (`recorded_at`, `event`) disagree with the record bytes it carries; for `audit check-proof`, a proof, receipt or signature that does not verify |
//! | 4 | the store is served by a running `gridcase serve` and the command needs its files to itself (`init`, `import`, `demo`, `serve`, `tick`, `audit keygen`, `migrate` of a served directory): stop the server first |
//! | 141 | standard output was closed by its reader (`gridcase rates --json \| head -c 10`): the command stops writing and ends quietly, as a program killed by SIGPIPE would (128 + 13) |

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
    /// From the projections: a query they refuse, or the log failing
    /// underneath (corruption included).
    #[error("{0}")]
    Projections(#[from] gridcase_projections::Error),
    /// From the transparency formats: a malformed key, note or proof file
    /// (the caller's to fix), or evidence that does not verify.
    #[error("{0}")]
    Trust(#[from] gridcase_engine::transparency::gridcase_trust::TrustError),
    /// The command needs the store's files to itself, and a running server
    /// holds them (`crate::remote`).
    #[error("{0}")]
    Served(String),
    /// Standard output's reader went away; nothing is printed about it.
    #[error("standard output was closed")]
    StdoutClosed,
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
        move |source| {
            if source.kind() == std::io::ErrorKind::BrokenPipe {
                CliError::StdoutClosed
            } else {
                CliError::Io { what, source }
            }
        }
    }

    /// The process exit code (the table in the module docs).
    pub fn exit_code(&self) -> u8 {
        use gridcase_engine::transparency::gridcase_trust::TrustError;
        use gridcase_projections::Error as P;
        match self {
            CliError::Engine(gridcase_engine::Error::Corruption { .. })
            | CliError::Projections(P::Log(gridcase_engine::Error::Corruption { .. }))
            | CliError::Projections(P::Decode { .. }) => 3,
            CliError::Engine(e) | CliError::Projections(P::Log(e)) if e.is_client_error() => 2,
            CliError::Projections(P::InvalidInput(_)) => 2,
            CliError::Usage(_) => 2,
            CliError::Trust(TrustError::Verification(_)) => 3,
            CliError::Trust(TrustError::Malformed(_) | TrustError::Invalid(_)) => 2,
            CliError::Served(_) => 4,
            CliError::StdoutClosed => 141,
            _ => 1,
        }
    }

    /// Whether `main` prints nothing for it (the reader is gone).
    pub fn is_quiet(&self) -> bool {
        matches!(self, CliError::StdoutClosed)
    }
}
