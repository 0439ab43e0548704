//! What can go wrong between a client and its server.

use std::path::PathBuf;
use std::time::Duration;

/// A fault on the cache path. Each names what failed and on what; [`ClientError::cause`] gives
/// the short name the statistics count it under.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The server at the socket runs as another user: nothing was sent to it. Anyone who can
    /// write to the socket's directory can listen there; only a server of this process's own
    /// effective uid is believed (see `docs/Security.md`).
    #[error(
        "refusing the hoard server at {socket}: it runs as uid {uid}, not as this user (uid {own}); \
         nothing was sent to it (another user may be listening on this path: remove the socket \
         or point HOARD_SERVER_UDS at a directory only you can write)"
    )]
    UntrustedServer {
        /// The socket path.
        socket: PathBuf,
        /// The uid the kernel reports for the listening process.
        uid: u32,
        /// This process's effective uid.
        own: u32,
    },
    /// The kernel could not say who runs the server at the socket: it is not believed.
    #[error("cannot tell who runs the hoard server at {socket}: {source}; nothing was sent to it")]
    PeerUnknown {
        /// The socket path.
        socket: PathBuf,
        /// The OS error of `SO_PEERCRED`.
        #[source]
        source: std::io::Error,
    },
    /// A file the client keeps beside the socket (the spawn lock) is not its own, or cannot be
    /// opened.
    #[error(transparent)]
    StateFile(#[from] crate::trust::StateFileError),
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

/// A client fault as the compiler pipeline carries it, so `?` passes it up from an
/// [`hoard_compiler::ArtifactCache`] method; [`ClientError::cause`] still finds it inside.
impl From<ClientError> for hoard_compiler::CacheError {
    fn from(error: ClientError) -> Self {
        hoard_compiler::CacheError::new(error)
    }
}

impl ClientError {
    /// The short, stable name this fault is counted under in `local_fallback_causes`.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Connect { .. } | Self::ConnectTcp { .. } => "connect",
            Self::NotShared { .. } => "not_shared",
            Self::Entry(_) => "entry",
            Self::Spawn { .. }
            | Self::StartTimeout { .. }
            | Self::StateFile(crate::trust::StateFileError::Io { .. }) => "server_start",
            Self::Timeout { .. } => "timeout",
            Self::Io { .. } | Self::Closed { .. } => "server_closed",
            Self::Protocol(_) | Self::Unexpected { .. } => "protocol",
            Self::Refused { .. } => "refused",
            Self::Unsupported { .. } => "unsupported",
            Self::Stop(_) => "stop",
            Self::UntrustedServer { .. }
            | Self::PeerUnknown { .. }
            | Self::StateFile(crate::trust::StateFileError::Foreign { .. }) => "server_untrusted",
        }
    }
}
