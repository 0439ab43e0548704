//! Why a control command failed.

use hoard::config::ConfigError;

/// Why a control command failed; printed after `hoard: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// The configuration (environment or file) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No tokio runtime could be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server could not be reached, started, stopped or asked.
    #[error(transparent)]
    Server(#[from] hoard_client::ClientError),
    /// The journal given to `--report` could not be read.
    #[error(transparent)]
    Journal(#[from] hoard_client::journal::JournalError),
    /// A report could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `--explain` needs the current directory, as the compile would.
    #[error("current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    /// `--explain` with nothing after `--`.
    #[error("--explain wants a compiler command after --")]
    NoCommand,
    /// `--json` with no report it formats.
    #[error("--json goes with --show-stats, --report or --show-config")]
    JsonAlone,
    /// `--format` with no report, or a format the report does not have.
    #[error("--format {0} goes with {1}")]
    FormatMisplaced(&'static str, &'static str),
    /// `HOARD_PATHS` holds a value hoard does not know (reported by `--show-config`, after
    /// the report; compiles run as under `exact`).
    #[error("{0}; compiles run as under HOARD_PATHS=exact")]
    PathMode(#[from] hoard_compiler::PathModeError),
    /// `hoard keygen` could not write the key.
    #[error(transparent)]
    Keygen(#[from] hoard_storage::signing::SigningError),
    /// A cache-management command failed.
    #[error(transparent)]
    Management(#[from] hoard::cache_management::ManagementError),
    /// `--evict-older-than` was given something that is not an age.
    #[error("--evict-older-than: {message}")]
    BadAge {
        /// What was given.
        value: String,
        /// Why it is not an age.
        message: String,
    },
    /// The manual page could not be written.
    #[error("cannot write the manual page: {0}")]
    ManPage(#[source] std::io::Error),
    /// Called as a compiler hoard cannot find past its own links.
    #[error(transparent)]
    Masquerade(#[from] hoard::masquerade::MasqueradeError),
    /// The command line could not be read.
    #[error("{0}")]
    Usage(String),
    /// No action at all.
    #[error("nothing to do: give a compiler command or a control flag (see --help)")]
    NothingToDo,
}
