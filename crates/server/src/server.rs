//! The listening side: one live server per socket, its accept loop, idle shutdown and a
//! clean `Shutdown`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::ServerConfig;
use crate::error::ServerError;
use crate::gateway::{Gate, GatewayLimits};
use crate::shared::Shared;
use crate::state_files::StateFiles;

/// How long a change to the statistics may wait to be saved: what a `kill -9` can lose.
const STATS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

async fn save_stats_every(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        shared.save_stats();
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

/// The sockets a server listens on, bound while it holds the lock.
struct Listeners {
    unix: UnixListener,
    tcp: Option<TcpListener>,
    /// The metrics endpoint's (`--metrics`).
    metrics: Option<TcpListener>,
}

/// Binds the TCP and metrics addresses (if any) and the socket, which replaces a dead
/// server's, and writes the pid file.
async fn listen(config: &ServerConfig, files: &mut StateFiles) -> Result<Listeners, ServerError> {
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
    let metrics = match &config.metrics {
        None => None,
        Some(addr) => Some(crate::metrics::bind(addr).await?),
    };
    files.remove_stale_socket()?;
    let socket = &config.socket_path;
    let unix = UnixListener::bind(socket).map_err(|source| ServerError::Io {
        op: "listen on",
        path: socket.clone(),
        source,
    })?;
    files.restrict_socket()?;
    files.write_pid()?;
    Ok(Listeners { unix, tcp, metrics })
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
    let listeners = listen(&config, files).await?;
    let terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;

    let shared = Shared::open(config, own_uid, &limits)?;
    publish_local_hits(&shared.config);
    // The tiers' prefetch indexes load (and their connections open) before the first request.
    shared.tiers.warm_up();
    tracing::info!(socket = %shared.config.socket_path.display(), pid = std::process::id(), "serving");
    let mut accepting = vec![tokio::spawn(crate::accept::unix(
        listeners.unix,
        shared.clone(),
    ))];
    if let Some(tcp) = listeners.tcp {
        tracing::info!(addr = ?tcp.local_addr().ok(), ?limits,
            "serving TCP clients that show the token");
        let gate = Arc::new(Gate::new(limits));
        accepting.push(tokio::spawn(crate::accept::tcp(tcp, shared.clone(), gate)));
    }
    if let Some(metrics) = listeners.metrics {
        tracing::info!(addr = ?metrics.local_addr().ok(), "serving /metrics and /status");
        accepting.push(tokio::spawn(crate::metrics::serve(metrics, shared.clone())));
    }
    let saver = tokio::spawn(save_stats_every(shared.clone(), STATS_SAVE_INTERVAL));
    wait_for_stop(&shared, terminate, interrupt).await;
    // No new connections from here on; scrapes in progress end with their listener.
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
    shared.save_stats();
    Ok(())
}

/// Tells this cache directory's clients whether they may serve hits from the local store
/// themselves (see [`hoard_protocol::LOCAL_HITS_FILE`]): yes when this server speaks v2, to
/// clients in its own mount namespace (without `/proc` to name it, to none). A
/// marker that cannot be written only costs those clients a round trip per hit.
fn publish_local_hits(config: &crate::ServerConfig) {
    let marker = config.cache_dir.join(hoard_protocol::LOCAL_HITS_FILE);
    let namespace = hoard_protocol::mount_namespace();
    let done = if let (true, Some(namespace)) = (
        config.max_protocol >= hoard_protocol::PROTOCOL_V2,
        namespace,
    ) {
        std::fs::write(&marker, hoard_protocol::local_hits_marker(&namespace))
    } else {
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    if let Err(e) = done {
        tracing::warn!(path = %marker.display(), error = %e, "local-hits marker not updated");
    }
}

/// Returns when the server is told to stop (`Shutdown`, SIGTERM, SIGINT) or has been idle
/// past its timeout.
async fn wait_for_stop(shared: &Shared, mut terminate: Signal, mut interrupt: Signal) {
    let tick = shared
        .config
        .idle_timeout
        .map_or(Duration::from_secs(3600), |t| {
            (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
        });
    let mut ticker = tokio::time::interval(tick);
    loop {
        tokio::select! {
            () = shared.shutdown.notified() => {
                tracing::info!("shutdown requested");
                return;
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                return;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: shutting down");
                return;
            }
            _ = ticker.tick() => {
                if let (Some(timeout), Some(idle)) = (shared.config.idle_timeout, shared.idle_for())
                    && idle >= timeout
                {
                    tracing::info!("idle for {idle:?}; exiting");
                    return;
                }
            }
        }
    }
}
