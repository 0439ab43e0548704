//! What a client needs to know: where the server listens and how to start one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How to start a server when none is listening. The environment is passed so the server
/// serves the same storage configuration the client derived its socket name from.
#[derive(Debug, Clone)]
pub struct ServerLaunch {
    /// The `hoard-server` executable.
    pub program: PathBuf,
    /// Extra environment for it (on top of the client's own).
    pub env: Vec<(OsString, OsString)>,
}

/// A client's configuration. The `hoard` binary fills it from the environment and config
/// file; embedders build it directly.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The cache directory (`HOARD_DIR`): the compiler-identity cache and the client events
    /// log live here.
    pub cache_dir: PathBuf,
    /// The server's Unix socket.
    pub socket_path: PathBuf,
    /// A server on another machine (`host:port`, `HOARD_SERVER_ADDR`) to use instead of the
    /// socket. No server is ever started for it, and every entry travels inline.
    pub server_addr: Option<String>,
    /// The token a TCP server admits clients by (`HOARD_SERVER_TOKEN`).
    pub token: Option<String>,
    /// How to start a server; `None` means never start one (connect or fall back).
    pub launch: Option<ServerLaunch>,
    /// How long to wait for a server to come up (including starting one).
    pub connect_timeout: Duration,
    /// How long one request may take before the client gives up and compiles locally.
    pub request_timeout: Duration,
    /// How long a server may take to answer `Hello`, its first answer on a connection, before
    /// the client takes it for wedged and compiles locally (capped by `request_timeout`). Short:
    /// a live server answers at once however loaded it is, and a stopped or deadlocked one
    /// still accepts connections into its listen backlog, so only this wait finds it out. A
    /// server that started less than `connect_timeout` ago (it may still be opening its
    /// cache) is given until then.
    pub answer_timeout: Duration,
    /// How long, after a server failed to answer in time, later wrappers compile locally
    /// without asking it again (remembered in `HOARD_DIR/server-unresponsive`; forgotten
    /// earlier when that server is killed, restarted or answers a control command).
    pub unresponsive_memory: Duration,
    /// Largest frame accepted from the server.
    pub max_frame_length: usize,
    /// How long a v1 `Compile` (the server compiles) may take.
    pub compile_timeout: Duration,
    /// Use direct mode (manifests) for C/C++.
    pub direct_mode: bool,
    /// The newest protocol version to speak (`HOARD_PROTOCOL`). At 1 the client behaves exactly
    /// like a client from before v2: no `Hello`, every compile sent as `Compile`.
    pub max_protocol: u32,
    /// `HOARD_JOURNAL`: append one JSON line per invocation here (see [`crate::journal`]).
    pub journal: Option<PathBuf>,
}

impl ClientConfig {
    /// Defaults for everything but the directory and the socket.
    pub fn new(cache_dir: PathBuf, socket_path: PathBuf) -> Self {
        Self {
            cache_dir,
            socket_path,
            server_addr: None,
            token: None,
            launch: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            answer_timeout: Duration::from_secs(5),
            unresponsive_memory: Duration::from_secs(60),
            max_frame_length: hoard_protocol::DEFAULT_MAX_FRAME_LENGTH,
            compile_timeout: Duration::from_secs(600),
            direct_mode: true,
            max_protocol: hoard_protocol::MAX_PROTOCOL,
            journal: None,
        }
    }
}
