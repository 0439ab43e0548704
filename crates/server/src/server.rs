//! The listening side: one live server per socket, its accept loop, idle shutdown and a
//! clean `Shutdown`.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hoard_storage::{DiskStore, EntryStore, StorageError, TieredStorage};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Notify;

use crate::ServerConfig;
use crate::connection::Peer;
use crate::stats::{Counted, ServerStats};

/// Why a server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another live server holds this socket's lock; this one is not needed.
    #[error("a hoard server is already running for {0}")]
    AlreadyRunning(PathBuf),
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

/// Opens the store and tiers and gathers what every connection shares.
fn open_state(config: ServerConfig, own_uid: u32) -> Result<Arc<Shared>, ServerError> {
    let cache_dir = config.cache_dir.join("cache");
    let disk = DiskStore::open(&cache_dir, config.cache_size)?;
    // Never connects here: a tier that is down now is picked up when it comes back.
    let tiers = Arc::new(TieredStorage::new(disk, config.tiers.clone())?);
    let stats = Arc::new(ServerStats::persistent(
        config.client_events_path(),
        config.stats_path(),
    ));
    Ok(Arc::new(Shared {
        store: entry_store(&tiers, &config, &stats),
        v1_cache: hoard_compiler::StorageCache::new(entry_store(&tiers, &config, &stats)),
        tiers,
        stats,
        background: tokio_util::task::TaskTracker::new(),
        own_uid,
        shutdown: Notify::new(),
        flights: Arc::new(crate::flight::Flights::new(config.single_flight_wait)),
        active: AtomicUsize::new(0),
        last_active: std::sync::Mutex::new(Instant::now()),
        config,
    }))
}

/// How long a change to the statistics may wait to be saved: what a `kill -9` can lose.
const STATS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

async fn save_stats_every(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        save_stats(&shared);
    }
}

fn save_stats(shared: &Shared) {
    let live = crate::connection::live_tiers(shared);
    if let Err(e) = shared.stats.save(live) {
        tracing::debug!(path = %shared.config.stats_path().display(), error = %e,
            "cannot save statistics");
    }
}

fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_owned();
    move |source| ServerError::Io { op, path, source }
}

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub store: EntryStore,
    /// The pipeline's view of the same store, for v1 `Compile` requests.
    pub v1_cache: hoard_compiler::StorageCache,
    /// The local disk and the remote tiers behind it.
    pub tiers: Arc<TieredStorage>,
    pub stats: Arc<ServerStats>,
    /// Puts being packed and stored after their answer went out; waited for at exit.
    pub background: tokio_util::task::TaskTracker,
    /// The server's own uid: only peers with this uid get file operations.
    pub own_uid: u32,
    pub shutdown: Notify,
    /// Keys some connection is compiling right now, for single flight.
    pub flights: Arc<crate::flight::Flights>,
    active: AtomicUsize,
    last_active: std::sync::Mutex<Instant>,
}

impl Shared {
    fn touch(&self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    /// Whether `key` is in the local store now: one `stat`, no read.
    pub fn stored_locally(&self, key: &hoard_storage::CacheKey) -> bool {
        self.tiers.local().contains(key)
    }

    fn idle_for(&self) -> Option<Duration> {
        (self.active.load(Ordering::SeqCst) == 0).then(|| {
            self.last_active
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .elapsed()
        })
    }
}

fn spawn_connection<S>(shared: &Arc<Shared>, stream: S, peer: Peer)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    shared.active.fetch_add(1, Ordering::SeqCst);
    shared.touch();
    tokio::spawn(async move {
        crate::connection::serve_connection(stream, peer, &shared).await;
        shared.touch();
        shared.active.fetch_sub(1, Ordering::SeqCst);
    });
}

/// The next TCP client, or never when the server does not listen on TCP.
async fn accept_tcp(
    tcp: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match tcp {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Takes the lock that makes this the one server for its socket; returns it with our uid.
fn take_lock(config: &ServerConfig) -> Result<(File, u32), ServerError> {
    if let Some(dir) = config.socket_path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create socket directory", dir))?;
    }
    let lock_path = config.lock_path();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(ServerError::AlreadyRunning(config.socket_path.clone()));
        }
        Err(TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
    }
    // The lock file was created by this process, so its owner is our effective uid: no need
    // for an unsafe geteuid().
    let own_uid = lock
        .metadata()
        .map_err(io("stat lock file", &lock_path))?
        .uid();
    Ok((lock, own_uid))
}

/// The entry store over `tiers`, packing local entries as configured.
fn entry_store(
    tiers: &Arc<TieredStorage>,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
) -> EntryStore {
    let format = if config.local_compression {
        hoard_storage::entry::EntryFormat::Zstd
    } else {
        hoard_storage::entry::EntryFormat::Raw
    };
    let stats = stats.clone();
    EntryStore::new(tiers.clone())
        .with_format(format)
        .with_hard_links(config.hard_links)
        .on_corrupt(Arc::new(move |_| stats.count(Counted::Corrupt)))
}

/// Runs a server until it is told to shut down or stays idle past the timeout.
///
/// Exactly one server runs per socket: the first to take the lock beside the socket serves,
/// and any other returns [`ServerError::AlreadyRunning`] at once. A socket file left behind by
/// a dead server is replaced.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    if let Some(addr) = &config.listen
        && config.token.as_deref().is_none_or(str::is_empty)
    {
        return Err(ServerError::NoToken(addr.clone()));
    }
    let (lock, own_uid) = take_lock(&config)?;
    let tcp = match &config.listen {
        None => None,
        Some(addr) => {
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Listen {
                        addr: addr.clone(),
                        source,
                    })?,
            )
        }
    };
    let socket = &config.socket_path;
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("remove stale socket", socket)(e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(socket).map_err(io("listen on", socket))?;
    let pid_path = config.pid_path();
    File::create(&pid_path)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .map_err(io("write pid file", &pid_path))?;

    let shared = open_state(config, own_uid)?;
    tracing::info!(socket = %shared.config.socket_path.display(), pid = std::process::id(), "serving");
    if let Some(tcp) = &tcp {
        tracing::info!(addr = ?tcp.local_addr().ok(), "serving TCP clients that show the token");
    }

    let tick = shared
        .config
        .idle_timeout
        .map_or(Duration::from_secs(3600), |t| {
            (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
        });
    let mut ticker = tokio::time::interval(tick);
    let saver = tokio::spawn(save_stats_every(shared.clone(), STATS_SAVE_INTERVAL));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let uid = stream.peer_cred().ok().map(|c| c.uid());
                    spawn_connection(&shared, stream, Peer::Local { uid });
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok((stream, addr)) => {
                    // Requests are small and latency-bound: never wait to fill a packet.
                    let _ = stream.set_nodelay(true);
                    spawn_connection(&shared, stream, Peer::Remote { addr });
                }
                Err(e) => tracing::warn!("TCP accept failed: {e}"),
            },
            () = shared.shutdown.notified() => {
                tracing::info!("shutdown requested");
                break;
            }
            _ = ticker.tick() => {
                if let (Some(timeout), Some(idle)) = (shared.config.idle_timeout, shared.idle_for())
                    && idle >= timeout
                {
                    tracing::info!("idle for {idle:?}; exiting");
                    break;
                }
            }
        }
    }
    // Entries still being packed, then queued remote writes, would die with the runtime.
    shared.background.close();
    shared.background.wait().await;
    if !shared.tiers.flush(Duration::from_secs(10)).await {
        tracing::warn!("remote writes still queued at exit were dropped");
    }
    saver.abort();
    save_stats(&shared);
    // Still holding the lock, so the socket and pid file are ours to remove.
    let _ = std::fs::remove_file(&shared.config.socket_path);
    let _ = std::fs::remove_file(&pid_path);
    drop(lock);
    Ok(())
}
