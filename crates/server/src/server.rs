//! The listening side: one live server per socket, its accept loop, idle shutdown and a
//! clean `Shutdown`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hoard_storage::{DiskStore, EntryStore, StorageError, TieredStorage};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::ServerConfig;
use crate::gateway::{Gate, GatewayLimits, InlineBudget};
use crate::state_files::{StateFiles, Unsafe};
use crate::stats::{Counted, ServerStats};

/// Why a server could not start or keep running.
#[derive(Debug, thiserror::Error)]
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
fn open_state(
    config: ServerConfig,
    own_uid: u32,
    limits: &GatewayLimits,
) -> Result<Arc<Shared>, ServerError> {
    let cache_dir = config.cache_dir.join("cache");
    let disk = DiskStore::open(&cache_dir, config.cache_size)?;
    // Never connects here: a tier that is down now is picked up when it comes back.
    let tiers = Arc::new(
        TieredStorage::new(disk, config.tiers.clone())?.with_entry_limits(entry_limits(&config)),
    );
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
        inline_budget: InlineBudget::new(limits),
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
    /// Connections being served.
    pub active: AtomicUsize,
    last_active: std::sync::Mutex<Instant>,
    /// What inline puts in flight may hold together.
    pub inline_budget: InlineBudget,
}

impl Shared {
    /// Notes activity, for the idle timeout.
    pub fn touch(&self) {
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
        .with_limits(entry_limits(config))
        .with_format(format)
        .with_hard_links(config.hard_links)
        .on_corrupt(Arc::new(move |_| stats.count(Counted::Corrupt)))
}

/// What an entry from any tier may declare: no file over the largest output this server
/// would have read for a put.
fn entry_limits(config: &ServerConfig) -> hoard_storage::EntryLimits {
    hoard_storage::EntryLimits {
        max_file_size: config.max_output_size,
        ..hoard_storage::EntryLimits::default()
    }
}

/// Runs a server until it is told to shut down (`Shutdown`, SIGTERM, SIGINT) or stays idle
/// past the timeout.
///
/// Exactly one server runs per socket: the first to take the lock beside the socket serves,
/// and any other of the same uid returns [`ServerError::AlreadyRunning`] at once. The
/// server's uid is its effective uid; the socket's directory, lock and pid files must be this
/// uid's alone (see [`ServerError::UnsafeDirectory`], [`ServerError::UnsafeFile`],
/// [`ServerError::LockedByOther`]). A socket file left behind by a dead server is replaced.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    if let Some(addr) = &config.listen
        && config.token.as_deref().is_none_or(str::is_empty)
    {
        return Err(ServerError::NoToken(addr.clone()));
    }
    let own_uid = rustix::process::geteuid().as_raw();
    let mut files = StateFiles::take(&config.socket_path, own_uid)?;
    let served = serve_locked(config, own_uid, &mut files).await;
    // Still holding the lock, so the socket and pid file are ours to remove.
    files.remove_served();
    served
}

/// Everything after the lock is ours: listen, serve, and stop cleanly.
async fn serve_locked(
    config: ServerConfig,
    own_uid: u32,
    files: &mut StateFiles,
) -> Result<(), ServerError> {
    let limits = config
        .gateway
        .unwrap_or_else(GatewayLimits::for_this_process);
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
    files.remove_stale_socket()?;
    let socket = &config.socket_path;
    let listener = UnixListener::bind(socket).map_err(|source| ServerError::Io {
        op: "listen on",
        path: socket.clone(),
        source,
    })?;
    files.restrict_socket()?;
    files.write_pid()?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;

    let shared = open_state(config, own_uid, &limits)?;
    tracing::info!(socket = %shared.config.socket_path.display(), pid = std::process::id(), "serving");
    let mut accepting = vec![tokio::spawn(crate::accept::unix(listener, shared.clone()))];
    if let Some(tcp) = tcp {
        tracing::info!(addr = ?tcp.local_addr().ok(), ?limits,
            "serving TCP clients that show the token");
        let gate = Arc::new(Gate::new(limits));
        accepting.push(tokio::spawn(crate::accept::tcp(tcp, shared.clone(), gate)));
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
            () = shared.shutdown.notified() => {
                tracing::info!("shutdown requested");
                break;
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: shutting down");
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
    // No new connections from here on.
    for task in accepting {
        task.abort();
    }
    // Entries still being packed, then queued remote writes, would die with the runtime.
    shared.background.close();
    shared.background.wait().await;
    if !shared.tiers.flush(Duration::from_secs(10)).await {
        tracing::warn!("remote writes still queued at exit were dropped");
    }
    saver.abort();
    save_stats(&shared);
    Ok(())
}
