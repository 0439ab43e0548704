//! Why a server could not start or keep running: the one error `serve` returns, and what
//! makes a path unfit to hold the server's state.

use std::path::PathBuf;

use hoard_storage::StorageError;

/// Why a server could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Another live server of this uid holds this socket's lock; this one is not needed.
    #[error("a hoard server is already running for {0}")]
    AlreadyRunning(PathBuf),
    /// A process of another uid holds this socket's lock: someone else's server, or an
    /// attempt to keep this user's from starting.
    #[error(
        "the lock {path} is held by process {pid} of uid {uid}, not by this user: \
         refusing to serve next to it"
    )]
    LockedByOther {
        /// The lock file.
        path: PathBuf,
        /// The process holding it.
        pid: u32,
        /// That process's effective uid.
        uid: u32,
    },
    /// The socket's directory could be tampered with by another user.
    #[error(
        "refusing the socket directory {path}: it {problem}; put HOARD_SERVER_UDS in a \
         directory only this user can write (0700)"
    )]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
    /// The lock or pid file is not a regular file of this user's.
    #[error("refusing {path}: it {problem}")]
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
    /// A signal handler could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    /// A file or directory the server needs could not be set up.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The local cache could not be opened.
    #[error("cannot open the cache: {0}")]
    Storage(#[from] StorageError),
    /// TCP serving was asked for without a token to admit clients by.
    #[error(
        "refusing to listen on {0} without a token: set HOARD_SERVER_TOKEN (TCP clients must show it)"
    )]
    NoToken(String),
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsListen {
        /// The address asked for.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What makes a path unfit to hold the server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsafe {
    /// Another user owns it.
    #[error("is owned by uid {owner}, not by this server's uid {uid}")]
    OwnedBy {
        /// Its owner.
        owner: u32,
        /// The server's effective uid.
        uid: u32,
    },
    /// Someone besides its owner may create, rename or delete entries in it.
    #[error("is writable by group or others (mode {mode:04o})")]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// It is a symbolic link, which is never followed.
    #[error("is a symlink")]
    Symlink,
    /// It should be a directory and is not.
    #[error("is not a directory")]
    NotDirectory,
    /// It should be a regular file and is not.
    #[error("is not a regular file")]
    NotRegular,
}
