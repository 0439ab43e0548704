//! What can go wrong between a client and its server.

use std::path::PathBuf;
use std::time::Duration;

/// A fault on the cache path. Each names what failed and on what; [`ClientError::cause`] gives
/// the short name the statistics count it under.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to the hoard server at {socket}: {source}")]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP server could not be reached.
    #[error("cannot connect to the hoard server at {addr} (HOARD_SERVER_ADDR): {source}")]
    ConnectTcp {
        /// The address as configured.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server cannot see the client's output directory, and cannot take the entry inline
    /// either (it predates inline transfers).
    #[error(
        "the hoard server cannot see {directory} (another mount namespace or machine) and does not take entries inline"
    )]
    NotShared {
        /// The directory, as the client names it.
        directory: PathBuf,
    },
    /// An entry received inline could not be extracted, or outputs could not be packed for
    /// an inline put.
    #[error("inline entry: {0}")]
    Entry(#[from] hoard_storage::EntryError),
    /// The server could not be started.
    #[error("cannot start the hoard server {program}: {source}")]
    Spawn {
        /// The server executable.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No server came up in time.
    #[error("no hoard server listening at {socket} after {waited:?}")]
    StartTimeout {
        /// The socket path.
        socket: PathBuf,
        /// How long the client waited.
        waited: Duration,
    },
    /// The server did not answer in time.
    #[error("the hoard server did not answer {request} within {waited:?}")]
    Timeout {
        /// The request's type.
        request: &'static str,
        /// The timeout.
        waited: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("connection to the hoard server failed during {request}: {source}")]
    Io {
        /// The request's type.
        request: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection without answering.
    #[error("the hoard server closed the connection during {request}")]
    Closed {
        /// The request's type.
        request: &'static str,
    },
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Protocol(#[from] hoard_protocol::ProtocolError),
    /// The server answered with an error.
    #[error("the hoard server refused {request}: {message}")]
    Refused {
        /// The request's type.
        request: &'static str,
        /// The server's message.
        message: String,
    },
    /// The server does not speak what this client needs.
    #[error("the hoard server does not support {request}: {message}")]
    Unsupported {
        /// The request's type.
        request: &'static str,
        /// The server's message, if any.
        message: String,
    },
    /// The server neither took `Shutdown` nor could be stopped with signals.
    #[error("cannot stop the hoard server: {0}")]
    Stop(#[source] crate::server_process::StopError),
    /// The server answered with a response that does not fit the request.
    #[error("unexpected answer to {request}: {got}")]
    Unexpected {
        /// The request's type.
        request: &'static str,
        /// What came back.
        got: String,
    },
}

impl ClientError {
    /// The short, stable name this fault is counted under in `local_fallback_causes`.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Connect { .. } | Self::ConnectTcp { .. } => "connect",
            Self::NotShared { .. } => "not_shared",
            Self::Entry(_) => "entry",
            Self::Spawn { .. } | Self::StartTimeout { .. } => "server_start",
            Self::Timeout { .. } => "timeout",
            Self::Io { .. } | Self::Closed { .. } => "server_closed",
            Self::Protocol(_) | Self::Unexpected { .. } => "protocol",
            Self::Refused { .. } => "refused",
            Self::Unsupported { .. } => "unsupported",
            Self::Stop(_) => "stop",
        }
    }
}
