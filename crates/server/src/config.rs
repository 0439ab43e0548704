//! What a server is told at start.

use std::path::PathBuf;
use std::time::Duration;

/// The statistics file in `HOARD_DIR`, read by the next server.
pub const STATS_FILE: &str = "stats.json";

/// The default [`ServerConfig::single_flight_wait`]: half the clients' default answer timeout,
/// so a follower answers (and compiles, if it must) long before its client gives up.
pub const DEFAULT_SINGLE_FLIGHT_WAIT: Duration = Duration::from_secs(30);

/// Everything a server needs to run. The `hoard-server` binary fills it from the environment
/// and the config file; an embedder starts from [`ServerConfig::new`] and sets the fields it
/// needs (more may be added in any release, so it is never a struct literal outside this
/// crate).
#[derive(Debug, Clone)]
// Each bool is an independent on/off setting a user sets by name (`HOARD_*`).
#[allow(clippy::struct_excessive_bools)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The Unix socket to listen on. A lock file and a pid file live beside it.
    pub socket_path: PathBuf,
    /// The cache directory (`HOARD_DIR`): entries live under `cache/`.
    pub cache_dir: PathBuf,
    /// Size limit of the local cache, in bytes.
    pub cache_size: u64,
    /// Exit after this long without a connection; `None` never exits on its own.
    pub idle_timeout: Option<Duration>,
    /// Largest frame accepted from a client.
    pub max_frame_length: usize,
    /// Largest output file a `CachePut` may read.
    pub max_output_size: u64,
    /// The newest protocol version served. At 1 the server behaves exactly like a server that
    /// predates v2: `Hello` and every v2 request are answered `Unsupported`.
    pub max_protocol: u32,
    /// Whether the v1 handler's pipeline uses direct mode.
    pub direct_mode: bool,
    /// Remote storage tiers behind the local disk, in lookup order.
    pub tiers: Vec<hoard_storage::TierConfig>,
    /// What the server signs its remote puts with and whose signatures verifying tiers
    /// need (see `hoard_storage::signing`).
    pub trust: std::sync::Arc<hoard_storage::signing::Trust>,
    /// Also listen on this TCP address (`host:port`), as a cache gateway for clients on other
    /// machines: inline transfers only, and only after the handshake shows `token`.
    pub listen: Option<String>,
    /// The token TCP clients must show in `Hello`. Serving TCP without one is refused at start.
    pub token: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) and a JSON status page (`GET /status`) over
    /// HTTP at this address (`host:port`). Read-only, unauthenticated, no entry bytes and no
    /// credentials; off when `None`. See docs/Metrics.md.
    pub metrics: Option<String>,
    /// Single flight: how long a lookup that misses while another connection compiles the
    /// same key waits for that compile to be stored before answering. Keep it well under the
    /// clients' answer timeout (`HOARD_CLIENT_TIMEOUT`, 60 s by default), or a waiting client
    /// gives up on the server and compiles locally anyway.
    pub single_flight_wait: Duration,
    /// Keep local entries compressed (`HOARD_LOCAL_COMPRESSION=on`): a third to a quarter of
    /// the disk, slower hits. Off, they are raw and a hit is a verified copy.
    pub local_compression: bool,
    /// Hand a hit's large outputs over as hard links to the local store's files
    /// (`HOARD_HARD_LINK=on`): no copy at all, but each output then shares its inode with
    /// the cache.
    pub hard_links: bool,
    /// Leave a prefetch index in the remote tiers and read ahead along other machines'
    /// (`HOARD_PREFETCH`, on by default; see docs/Architecture.md).
    pub prefetch: bool,
    /// Caps on TCP peers (handshake deadline, connections) and the inline put budget. `None`
    /// derives them from the process's descriptor limit at start
    /// ([`GatewayLimits::for_this_process`](crate::GatewayLimits::for_this_process)).
    pub gateway: Option<crate::GatewayLimits>,
}

impl ServerConfig {
    /// Defaults for everything but where to listen and store.
    pub fn new(socket_path: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            socket_path,
            cache_dir,
            cache_size: 10 * 1024 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(600)),
            max_frame_length: hoard_protocol::DEFAULT_MAX_FRAME_LENGTH,
            max_output_size: 4 * 1024 * 1024 * 1024,
            max_protocol: hoard_protocol::MAX_PROTOCOL,
            direct_mode: true,
            tiers: Vec::new(),
            trust: std::sync::Arc::default(),
            listen: None,
            token: None,
            metrics: None,
            single_flight_wait: DEFAULT_SINGLE_FLIGHT_WAIT,
            local_compression: false,
            hard_links: false,
            prefetch: true,
            gateway: None,
        }
    }

    /// The lock file a live server holds for as long as it runs.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.socket_path, "lock")
    }

    /// Where the server's pid is written.
    pub fn pid_path(&self) -> PathBuf {
        sibling(&self.socket_path, "pid")
    }

    /// Where the statistics are saved across restarts.
    pub fn stats_path(&self) -> PathBuf {
        self.cache_dir.join(STATS_FILE)
    }

    /// The client events log folded into the stats.
    pub fn client_events_path(&self) -> PathBuf {
        self.cache_dir.join(hoard_protocol::CLIENT_EVENTS_FILE)
    }
}

fn sibling(socket: &std::path::Path, extension: &str) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}
