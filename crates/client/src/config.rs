//! What a client needs to know: where the server listens and how to start one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How to start a server when none is listening. The environment is passed so the server
/// serves the same storage configuration the client derived its socket name from.
///
/// Build it with [`ServerLaunch::new`]; more settings may be added.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerLaunch {
    /// The `hoard-server` executable.
    pub program: PathBuf,
    /// Extra environment for it (on top of the client's own).
    pub env: Vec<(OsString, OsString)>,
}

/// A client's configuration. Its `Debug` never shows the token.
///
/// The `hoard` binary fills it from the environment and the config file; an embedder gets
/// exactly that configuration from the `hoard` library (`hoard::config::Settings::from_env()`,
/// then `.client()`; see the crate documentation), or builds its own with
/// [`ClientConfig::new`] and sets the fields it needs. Fields may be added in any release, so
/// it cannot be written as a struct literal outside this crate.
#[derive(Clone)]
#[non_exhaustive]
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
    /// `HOARD_JOURNAL`: the `hoard` wrapper appends one JSON line per invocation here (read by
    /// `hoard --report`).
    pub journal: Option<PathBuf>,
    /// `HOARD_RECACHE`: compile every cacheable command and store its result over the
    /// cached one, never serving a hit (ccache's `CCACHE_RECACHE`).
    pub recache: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Spelled out so that a `?config` in a log line can never carry the token.
        f.debug_struct("ClientConfig")
            .field("cache_dir", &self.cache_dir)
            .field("socket_path", &self.socket_path)
            .field("server_addr", &self.server_addr)
            .field("token", &self.token.as_ref().map(|_| "(set, not shown)"))
            .field("launch", &self.launch.as_ref().map(|l| &l.program))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("answer_timeout", &self.answer_timeout)
            .field("unresponsive_memory", &self.unresponsive_memory)
            .field("max_frame_length", &self.max_frame_length)
            .field("compile_timeout", &self.compile_timeout)
            .field("direct_mode", &self.direct_mode)
            .field("max_protocol", &self.max_protocol)
            .field("journal", &self.journal)
            .field("recache", &self.recache)
            .finish()
    }
}

impl ServerLaunch {
    /// Starts `program` (a `hoard-server` executable) with no environment of its own beyond
    /// the client's.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            env: Vec::new(),
        }
    }

    /// Adds `name=value` to the server's environment, on top of the client's own.
    #[must_use]
    pub fn with_env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }
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
            recache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientConfig;

    #[test]
    fn debug_never_shows_the_token() {
        let mut config = ClientConfig::new("/c".into(), "/s".into());
        config.token = Some("hunter2-token".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-token"), "{shown}");
        assert!(shown.contains("(set, not shown)"), "{shown}");
    }
}
